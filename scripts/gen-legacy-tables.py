#!/usr/bin/env python3
"""Generate src/dialect/tables/legacy_schema.json from UPS's legacy XML schemas.

Reads every *.xsd in target/legacy-xsd/soap/ (XOLTWS, namespaced) and target/legacy-xsd/oldxml/
(old XML API, no namespace; optional), as laid down by scripts/legacy-xsd.sh, and writes:

  src/dialect/tables/legacy_schema.json
    {"source": ..., "namespaces": {prefix: ns}, "roots": {"soap": {Name: {"ns", "type"}},
     "oldxml": {...}}, "types": {"prefix:Type": [child, ...]}}
    A child is {"name", "ns", "type", "min", "max"} in schema order (nested sequences
    flattened; "max": null = unbounded; "type": null = text leaf), plus "choice": N for the
    alternatives of the N-th xsd:choice of that type, "all": true inside xsd:all; xsd:any and
    mixed content give {"any": true, "min", "max"}.
  target/legacy-xsd/index.json
    which schema file validates a payload root: {"soap": {"{ns}Name": "soap/File.xsd"},
    "oldxml": {"Name": "oldxml/File.xsd"}}, paths relative to target/legacy-xsd.

XOLTWS services whose XSD is not under XSD_DIR/soap (Ship, LabelRecovery, Void, Track,
TimeInTransit, XAV) are derived instead from the classes generateDS generated from those XSDs
in PyPI carrier.ups (module ups_lib; found in $UPS_LIB_DIR or
target/client-venv/lib/python3*/site-packages/ups_lib, as laid down by scripts/setup.sh).
Those modules are read with the ast module, never imported (see GdsModule). What generateDS
keeps of the XSD: sequence order (the order _exportChildren writes the children), each child's
class or text leaf (_buildChildren), repetition ("self.X = []": "max": null), ref= versus local
element (a literal namespaceprefix_='p:' in the export call), each named type's namespace
(NamespaceToDefMappings_, RenameMappings_) and complexContent extension (the Python base
class). It does not keep minOccurs or xsd:choice (no member specs): those children get
"min": 0 and no "choice". Types of a namespace that has an XSD here (common, IF, Error, ...)
are taken from the XSD, never from the generated classes. Roots taken that way are written to
the table (with "roots_source") but not to index.json, which lists real XSD files only.

Usage: python3 scripts/gen-legacy-tables.py [--index-only] [XSD_DIR]
(XSD_DIR defaults to target/legacy-xsd). Standard library only; output is deterministic.
"""
import ast
import glob
import json
import os
import re
import sys
import xml.etree.ElementTree as ET

XS = "http://www.w3.org/2001/XMLSchema"
X = "{%s}" % XS
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "src", "dialect", "tables", "legacy_schema.json")

# Short prefixes for the XOLTWS namespaces (the prefixes UPS's own files use where they
# use one); anything else gets the lower-cased service segment of its URI.
KNOWN_PREFIXES = {
    "Rate": "rate", "Ship": "ship", "Void": "void", "Track": "trk", "tnt": "tnt",
    "TimeInTransit": "tnt", "xav": "xav", "XAV": "xav", "Pickup": "pkup", "Common": "common",
    "Error": "err", "UPSS": "upss", "IF": "IF", "FreightRate": "frt", "FreightShip": "fsp",
    "FreightPickup": "fpu", "LBRecovery": "lbr", "PaperlessDocumentAPI": "pda",
}


class Schema:
    def __init__(self, path, kind):
        self.path = path
        self.kind = kind  # "soap" or "oldxml"
        self.file = os.path.basename(path)
        self.nsmap = {}
        for event, (prefix, uri) in ET.iterparse(path, events=("start-ns",)):
            # First declaration of a prefix wins (UPS declares them all on xsd:schema).
            self.nsmap.setdefault(prefix, uri)
        self.root = ET.parse(path).getroot()
        if self.root.tag != X + "schema":
            raise SystemExit("%s: root is not xsd:schema" % path)
        self.tns = self.root.get("targetNamespace")
        self.qualified = self.root.get("elementFormDefault") == "qualified"
        # No-namespace (old XML) schemas each get their own scope: their type names clash.
        self.scope = self.tns if self.tns else "file:" + self.file

    def qname(self, value):
        """Resolve a QName attribute value to (namespace, local)."""
        if ":" in value:
            prefix, local = value.split(":", 1)
            if prefix not in self.nsmap:
                raise SystemExit("%s: unknown prefix in %r" % (self.file, value))
            return self.nsmap[prefix], local
        return self.nsmap.get("") or None, value


class Gen:
    def __init__(self, base):
        self.base = base
        self.schemas = []
        for kind in ("soap", "oldxml"):
            d = os.path.join(base, kind)
            if os.path.isdir(d):
                for name in sorted(os.listdir(d)):
                    if name.lower().endswith(".xsd"):
                        self.schemas.append(Schema(os.path.join(d, name), kind))
        if not self.schemas:
            raise SystemExit("no schemas under %s: run scripts/legacy-xsd.sh first" % base)
        self.complex = {}   # (scope, name) -> (schema, node)
        self.simple = set()
        self.elements = {}  # (scope, name) -> (schema, node)
        self.groups = {}
        self.element_owner = {}  # global element -> schema file that declares it
        for s in self.schemas:
            for child in s.root:
                name = child.get("name")
                key = (s.scope, name)
                table = {X + "complexType": self.complex, X + "element": self.elements,
                         X + "group": self.groups}.get(child.tag)
                if child.tag == X + "simpleType":
                    self.simple.add(key)
                elif table is not None:
                    if key in table and table[key][0].file != s.file:
                        # The same namespace defined twice (an older copy): keep the first,
                        # sorted by file name, and say so.
                        print("note: %s %s also in %s; using %s" % (
                            child.tag[len(X):], name, s.file, table[key][0].file), file=sys.stderr)
                        continue
                    table[key] = (s, child)
        self.prefixes = {}  # scope -> prefix
        for s in self.schemas:
            if s.scope not in self.prefixes:
                self.prefixes[s.scope] = self.make_prefix(s)
        self.types = {}
        self.anon_names = {}
        self.choice_counter = {}

    def make_prefix(self, s):
        if not s.tns:
            p = "ox." + re.sub(r"\.xsd$", "", s.file, flags=re.I)  # old XML: one scope per file
        else:
            m = re.search(r"/XOLTWS/([^/]+)/v[0-9.]+/?$", s.tns)
            seg = m.group(1) if m else s.tns.rstrip("/").rsplit("/", 1)[-1]
            p = KNOWN_PREFIXES.get(seg, seg.lower())
        used = set(self.prefixes.values())
        base, n = p, 2
        while p in used:
            p = "%s%d" % (base, n)
            n += 1
        return p

    def scope_of(self, s, ns):
        """Scope of a referenced QName: its namespace, or the file itself for no-namespace."""
        return ns if ns else s.scope

    def ns_of_local(self, s, node):
        form = node.get("form")
        qualified = s.qualified if form is None else form == "qualified"
        return s.tns if qualified else None

    # --- types -------------------------------------------------------------------------
    def type_key_for_named(self, s, qn):
        ns, local = qn
        if ns == XS:
            return None
        scope = self.scope_of(s, ns)
        if (scope, local) in self.complex:
            ts, node = self.complex[(scope, local)]
            key = "%s:%s" % (self.prefixes[ts.scope], local)
            self.build(key, ts, node)
            return key
        if (scope, local) in self.simple:
            return None
        raise SystemExit("%s: type %s:%s not found" % (s.file, ns, local))

    def is_leaf_complex(self, node):
        """complexType with simpleContent (text plus attributes): a text leaf for us."""
        return node.find(X + "simpleContent") is not None

    def element_type(self, s, el, anon_hint):
        """Type key (or None) of an element declaration node."""
        t = el.get("type")
        if t:
            qn = s.qname(t)
            if qn[0] != XS:
                scope = self.scope_of(s, qn[0])
                if (scope, qn[1]) in self.complex and self.is_leaf_complex(self.complex[(scope, qn[1])][1]):
                    return None
            return self.type_key_for_named(s, qn)
        ct = el.find(X + "complexType")
        if ct is None:
            return None  # simpleType child or no type at all (anyType): text for us
        if self.is_leaf_complex(ct):
            return None
        key = self.anon_key(s, anon_hint, ct)
        self.build(key, s, ct)
        return key

    def anon_key(self, s, hint, node):
        # hint: (is_global, owner_type_key, element_name)
        is_global, owner, name = hint
        prefix = self.prefixes[s.scope]
        if is_global:
            return "%s:%s" % (prefix, name)
        key = "%s:%s@anon" % (prefix, name)
        prev = self.anon_names.get(key)
        if prev is not None and prev is not node:
            key = "%s:%s/%s@anon" % (prefix, owner.split(":", 1)[1], name)
        self.anon_names.setdefault(key, node)
        return key

    def build(self, key, s, ct):
        if key in self.types:
            return
        self.types[key] = None  # placeholder: recursion stops here
        self.choice_counter[key] = 0
        self.types[key] = self.content(key, s, ct)

    def content(self, key, s, ct):
        items = []
        if ct.get("mixed") == "true":
            items.append({"any": True, "min": 0, "max": None})
        cc = ct.find(X + "complexContent")
        if cc is not None:
            ext = cc.find(X + "extension")
            res = cc.find(X + "restriction")
            if ext is not None:
                base = s.qname(ext.get("base"))
                if base[0] != XS:
                    bkey = self.type_key_for_named(s, base)
                    if bkey is not None:
                        items.extend(json.loads(json.dumps(self.types[bkey] or [])))
                        # base's choice numbers stay; ours continue after them
                        nums = [i["choice"] for i in items if "choice" in i]
                        self.choice_counter[key] = max(nums) if nums else 0
                self.particles(key, s, ext, items, 1, 1, None, False)
            elif res is not None:
                self.particles(key, s, res, items, 1, 1, None, False)
            if cc.get("mixed") == "true" and not any(i.get("any") for i in items):
                items.insert(0, {"any": True, "min": 0, "max": None})
            return items
        self.particles(key, s, ct, items, 1, 1, None, False)
        return items

    @staticmethod
    def occurs(node):
        mn = int(node.get("minOccurs", "1"))
        mx = node.get("maxOccurs", "1")
        return mn, (None if mx == "unbounded" else int(mx))

    @staticmethod
    def mul(a, b):
        return None if a is None or b is None else a * b

    def particles(self, key, s, parent, items, pmin, pmax, choice, in_all):
        for node in parent:
            tag = node.tag
            if tag in (X + "annotation", X + "attribute", X + "attributeGroup", X + "anyAttribute"):
                continue
            if tag in (X + "sequence", X + "choice", X + "all"):
                mn, mx = self.occurs(node)
                gmin, gmax = pmin * mn, self.mul(pmax, mx)
                if tag == X + "choice":
                    self.choice_counter[key] += 1
                    self.particles(key, s, node, items, gmin, gmax, self.choice_counter[key], in_all)
                else:
                    self.particles(key, s, node, items, gmin, gmax, choice, in_all or tag == X + "all")
            elif tag == X + "group":
                g = s.qname(node.get("ref"))
                gs, gnode = self.groups[(self.scope_of(s, g[0]), g[1])]
                mn, mx = self.occurs(node)
                self.particles(key, gs, gnode, items, pmin * mn, self.mul(pmax, mx), choice, in_all)
            elif tag == X + "element":
                mn, mx = self.occurs(node)
                if node.get("ref"):
                    ns, local = s.qname(node.get("ref"))
                    es, enode = self.elements[(self.scope_of(s, ns), local)]
                    item = {"name": local, "ns": es.tns,
                            "type": self.element_type(es, enode, (True, key, local))}
                else:
                    name = node.get("name")
                    item = {"name": name, "ns": self.ns_of_local(s, node),
                            "type": self.element_type(s, node, (False, key, name))}
                item["min"] = pmin * mn
                item["max"] = self.mul(pmax, mx)
                if choice is not None:
                    item["choice"] = choice
                if in_all:
                    item["all"] = True
                items.append(item)
            elif tag == X + "any":
                mn, mx = self.occurs(node)
                item = {"any": True, "min": pmin * mn, "max": self.mul(pmax, mx)}
                if choice is not None:
                    item["choice"] = choice
                items.append(item)
            elif tag in (X + "simpleContent",):
                continue
            elif tag in (X + "complexContent",):
                continue
            else:
                raise SystemExit("%s: unhandled %s in %s" % (s.file, tag, key))

    def xsd_named_key(self, ns, local, what):
        """Key of the XSD's complex type {ns}local (None: text leaf), for generated classes."""
        if (ns, local) in self.simple:
            return None
        if (ns, local) not in self.complex:
            raise SystemExit("%s: type %s:%s is not in the XSDs here" % (what, ns, local))
        ts, node = self.complex[(ns, local)]
        if self.is_leaf_complex(node):
            return None
        key = "%s:%s" % (self.prefixes[ts.scope], local)
        self.build(key, ts, node)
        return key

    def add_generated(self, roots, roots_source):
        """Roots and types of GDS_NAMESPACES without an XSD here, from carrier.ups's classes.
        Returns a phrase for "source" (None when nothing was added)."""
        xsd_scopes = {s.scope for s in self.schemas if s.tns}
        wanted = [ns for ns in GDS_NAMESPACES if ns not in xsd_scopes]
        if not wanted:
            return None
        ups_lib = find_ups_lib()
        if ups_lib is None:
            print("note: ups_lib (carrier.ups) not found: set UPS_LIB_DIR or run scripts/setup.sh;"
                  " no tables for %s" % ", ".join(wanted), file=sys.stderr)
            return None
        version = ups_lib_version(ups_lib)
        label = "carrier.ups %s" % version if version else "carrier.ups"
        by_ns = {}
        for path in sorted(glob.glob(os.path.join(ups_lib, "*.py"))):
            with open(path, encoding="utf-8") as f:
                m = re.search(r"""namespacedef_='xmlns:[\w.\-]+="([^"]+)"'""", f.read())
            if m and m.group(1) in wanted:
                by_ns.setdefault(m.group(1), path)
        conv = GdsConverter(self, xsd_scopes)
        used = []
        generator = None
        for ns in wanted:
            if ns not in by_ns:
                print("note: no carrier.ups module for %s" % ns, file=sys.stderr)
                continue
            mod = GdsModule(by_ns[ns])
            if mod.main_ns != ns:
                raise SystemExit("%s: main namespace %s, expected %s" % (mod.file, mod.main_ns, ns))
            generator = mod.generator
            names = []
            for cls in mod.roots():
                key = conv.type_key(mod, cls, ns, (True, None, cls))
                if key is None:
                    continue
                if cls in roots:
                    print("note: root %s also in %s; using the first" % (cls, mod.file), file=sys.stderr)
                    continue
                roots[cls] = {"ns": ns, "type": key}
                roots_source[cls] = "%s %s (%s, %s)" % (label, mod.generator, mod.file, mod.xsd)
                names.append(cls)
            m = re.search(r"/XOLTWS/([^/]+)/(v[0-9.]+)/?$", ns)
            used.append("%s %s" % (m.group(1), m.group(2)) if m else ns)
        for note in conv.notes:
            print("note: " + note, file=sys.stderr)
        for key, items in conv.types.items():
            if key in self.types and self.types[key] != items:
                raise SystemExit("generated type %s clashes with the XSD's" % key)
            self.types[key] = items
        if not used:
            return None
        return "%s classes (PyPI %s, min/choice not kept): %s" % (
            generator, label, ", ".join(used))

    # --- output ------------------------------------------------------------------------
    def run(self):
        roots = {"soap": {}, "oldxml": {}}
        roots_source = {}
        index = {"soap": {}, "oldxml": {}}
        # Roots: global elements of complex type that no declaration refers to (ref=). That
        # keeps the documents' and SOAP bodies' roots and drops building blocks such as
        # common:Request or the old XML API's global leaf elements.
        referenced = set()
        for s in self.schemas:
            for node in s.root.iter(X + "element"):
                if node.get("ref"):
                    ns, local = s.qname(node.get("ref"))
                    referenced.add((self.scope_of(s, ns), local))
        for (scope, name), (s, node) in sorted(self.elements.items(), key=lambda kv: (kv[1][0].kind, kv[1][0].file, kv[0][1])):
            if (scope, name) in referenced:
                continue
            tkey = self.element_type(s, node, (True, None, name))
            if tkey is None:
                continue  # a global text leaf (the old XML API has several) is no document root
            table = roots[s.kind]
            if name in table:
                print("note: root %s also in %s; using the first" % (name, s.file), file=sys.stderr)
                continue
            table[name] = {"ns": s.tns, "type": tkey}
            roots_source[name] = "xsd %s/%s" % (s.kind, s.file)
            index[s.kind][("{%s}%s" % (s.tns, name)) if s.tns else name] = "%s/%s" % (s.kind, s.file)
        generated = self.add_generated(roots["soap"], roots_source)
        roots = {k: dict(sorted(v.items())) for k, v in roots.items() if v}
        index = {k: dict(sorted(v.items())) for k, v in index.items() if v}
        namespaces = {p: (scope if not scope.startswith("file:") else None)
                      for scope, p in self.prefixes.items()}
        src_file = os.path.join(self.base, "SOURCE")
        source = open(src_file).read().strip() if os.path.exists(src_file) else "unknown"
        source = "xsd: " + source
        if generated:
            source += "; " + generated
        doc = {
            "source": source,
            "namespaces": dict(sorted(namespaces.items())),
            "roots": roots,
            "roots_source": dict(sorted(roots_source.items())),
            "types": dict(sorted(self.types.items())),
        }
        return doc, index


# --- generateDS classes (carrier.ups) for the services whose XSD is absent ----------------
# The XOLTWS namespaces taken from carrier.ups's generateDS modules when no XSD here declares
# them. Which module holds which namespace is read from the modules themselves.
GDS_NAMESPACES = [
    "http://www.ups.com/XMLSchema/XOLTWS/Ship/v1.0",
    "http://www.ups.com/XMLSchema/XOLTWS/LBRecovery/v1.0",  # LabelRecovery (Ship WSDL)
    "http://www.ups.com/XMLSchema/XOLTWS/Void/v1.1",
    "http://www.ups.com/XMLSchema/XOLTWS/Track/v2.0",
    "http://www.ups.com/XMLSchema/XOLTWS/tnt/v1.0",
    "http://www.ups.com/XMLSchema/XOLTWS/xav/v1.0",
]
# generateDS's namespace prefixes (those of the XSDs it read) as they appear in literal
# namespaceprefix_='p:' arguments, i.e. on ref= elements.
GDS_PREFIX_URIS = {
    "common": "http://www.ups.com/XMLSchema/XOLTWS/Common/v1.0",
    "IF": "http://www.ups.com/XMLSchema/XOLTWS/IF/v1.0",
    "ifs": "http://www.ups.com/XMLSchema/XOLTWS/IF/v1.0",
    "err": "http://www.ups.com/XMLSchema/XOLTWS/Error/v1.1",
    "upss": "http://www.ups.com/XMLSchema/XOLTWS/UPSS/v1.0",
    "ship": "http://www.ups.com/XMLSchema/XOLTWS/Ship/v1.0",
    "lbrec": "http://www.ups.com/XMLSchema/XOLTWS/LBRecovery/v1.0",
    "void": "http://www.ups.com/XMLSchema/XOLTWS/Void/v1.1",
    "trk": "http://www.ups.com/XMLSchema/XOLTWS/Track/v2.0",
    "tnt": "http://www.ups.com/XMLSchema/XOLTWS/tnt/v1.0",
    "xav": "http://www.ups.com/XMLSchema/XOLTWS/xav/v1.0",
    "rate": "http://www.ups.com/XMLSchema/XOLTWS/Rate/v1.1",
}
GDS_SKIP_PARAMS = {"self", "gds_collector_", "extensiontype_", "valueOf_", "mixedclass_", "content_"}


def find_ups_lib():
    d = os.environ.get("UPS_LIB_DIR")
    if d:
        return d if os.path.isdir(d) else None
    found = sorted(glob.glob(os.path.join(ROOT, "target", "client-venv", "lib", "python3*",
                                          "site-packages", "ups_lib")))
    return found[-1] if found else None


def ups_lib_version(ups_lib):
    """carrier.ups's version, from the dist-info next to ups_lib (None if not there)."""
    found = sorted(glob.glob(os.path.join(os.path.dirname(ups_lib), "carrier.ups-*.dist-info")))
    if not found:
        return None
    return os.path.basename(found[-1])[len("carrier.ups-"):-len(".dist-info")]


def _self_attr(node):
    """'X' for the expression self.X, else None."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return node.attr
    return None


def _kw(call, name):
    for k in call.keywords:
        if k.arg == name:
            return k.value
    return None


class GdsClass:
    """What one generateDS class says about its complex type (read from its source)."""

    def __init__(self, mod, node):
        self.name = node.name
        bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
        self.base = bases[0] if bases and bases[0] != "GeneratedsSuper" else None
        self.params = []
        self.lists = set()
        self.nsprefix = {}
        self.has_value = False
        self.children = []   # [{"attr", "name", "ref"}] in _exportChildren order
        self.build = {}      # element name -> class name, or None for a text leaf
        self.super_children = False
        for fn in node.body:
            if not isinstance(fn, ast.FunctionDef):
                continue
            if fn.name == "__init__":
                self.read_init(fn)
            elif fn.name == "_exportChildren":
                self.read_export(mod, fn)
            elif fn.name == "_buildChildren":
                self.read_build(mod, fn)

    def read_init(self, fn):
        args = [a.arg for a in fn.args.args]
        self.has_value = "valueOf_" in args or "content_" in args
        self.params = [a for a in args if a not in GDS_SKIP_PARAMS]
        for n in ast.walk(fn):
            if isinstance(n, ast.Assign) and len(n.targets) == 1:
                attr = _self_attr(n.targets[0])
                if attr is None:
                    continue
                if isinstance(n.value, ast.List):
                    self.lists.add(attr)
                elif attr.endswith("_nsprefix_") and isinstance(n.value, ast.Constant):
                    self.nsprefix[attr[:-len("_nsprefix_")]] = n.value.value

    def read_export(self, mod, fn):
        for st in fn.body:
            attr = None
            if isinstance(st, ast.If):
                t = st.test
                if isinstance(t, ast.Compare) and len(t.ops) == 1 and isinstance(t.ops[0], ast.IsNot):
                    attr = _self_attr(t.left)
                elif isinstance(t, ast.Name) and t.id == "pretty_print":
                    continue
            elif isinstance(st, ast.For):
                attr = _self_attr(st.iter)
            elif isinstance(st, ast.Expr) and isinstance(st.value, ast.Call) \
                    and isinstance(st.value.func, ast.Attribute) \
                    and st.value.func.attr == "_exportChildren":
                self.super_children = True
                continue
            elif isinstance(st, ast.Pass):
                continue
            if attr is None:
                raise SystemExit("%s: %s._exportChildren: unexpected statement at line %d"
                                 % (mod.file, self.name, st.lineno))
            name, ref = None, None
            for n in ast.walk(st):
                if not isinstance(n, ast.Call) or not isinstance(n.func, ast.Attribute):
                    continue
                if n.func.attr == "export":
                    v = _kw(n, "name_")
                    if isinstance(v, ast.Constant):
                        name = v.value
                    p = _kw(n, "namespaceprefix_")
                    if isinstance(p, ast.Constant) and p.value:
                        ref = p.value.rstrip(":")  # a ref= to a global element
                    break
                if n.func.attr == "write" and n.args and isinstance(n.args[0], ast.BinOp) \
                        and isinstance(n.args[0].left, ast.Constant):
                    m = re.match(r"<%s([A-Za-z_][\w.\-]*)>", n.args[0].left.value)
                    if not m:
                        raise SystemExit("%s: %s: unexpected leaf write %r"
                                         % (mod.file, self.name, n.args[0].left.value))
                    name = m.group(1)
                    break
            if name is None:
                raise SystemExit("%s: %s._exportChildren: no element for self.%s"
                                 % (mod.file, self.name, attr))
            self.children.append({"attr": attr, "name": name, "ref": ref})

    def read_build(self, mod, fn):
        for n in ast.walk(fn):
            if not isinstance(n, ast.If):
                continue
            tests = n.test.values if isinstance(n.test, ast.BoolOp) else [n.test]
            name = None
            for t in tests:
                if isinstance(t, ast.Compare) and isinstance(t.left, ast.Name) \
                        and t.left.id == "nodeName_" and isinstance(t.comparators[0], ast.Constant):
                    name = t.comparators[0].value
            if name is None:
                continue
            cls = None
            for b in n.body:
                for c in ast.walk(b):
                    if isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute):
                        if c.func.attr == "factory" and isinstance(c.func.value, ast.Name) \
                                and c.func.value.id != "class_obj_":
                            cls = c.func.value.id
                        elif c.func.attr == "get_class_obj_" and len(c.args) > 1 \
                                and isinstance(c.args[1], ast.Name):
                            cls = c.args[1].id
            self.build.setdefault(name, cls)


class GdsModule:
    """One generateDS module of ups_lib, read with ast (never imported)."""

    def __init__(self, path):
        self.path = path
        self.file = os.path.basename(path)
        text = open(path, encoding="utf-8").read()
        m = re.search(r"^# Generated .* by generateDS\.py version ([\d.]+)\.", text, re.M)
        self.generator = "generateDS %s" % m.group(1) if m else "generateDS"
        m = re.search(r"^# Command line arguments:\n#\s+(\S+)", text, re.M)
        self.xsd = os.path.basename(m.group(1)) if m else None
        tree = ast.parse(text, path)
        self.classes = {}
        self.order = []
        self.named = {}       # class name -> (namespace, XSD type name)
        self.main_ns = None
        self.gds_roots = {}   # GDSClassesMapping: element name -> class name
        rename = {}
        nsdefs = {}
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name not in (
                    "GDSParseError", "MixedContainer", "MemberSpec_", "GeneratedsSuper") \
                    and not node.name.startswith(("Gds", "_")):
                if any(isinstance(f, ast.FunctionDef) and f.name == "_exportChildren" for f in node.body):
                    self.classes[node.name] = GdsClass(self, node)
                    self.order.append(node.name)
            elif isinstance(node, ast.Assign) and len(node.targets) == 1 \
                    and isinstance(node.targets[0], ast.Name):
                target = node.targets[0].id
                if target == "RenameMappings_":
                    rename = ast.literal_eval(node.value)
                elif target == "NamespaceToDefMappings_":
                    nsdefs = ast.literal_eval(node.value)
                elif target == "GDSClassesMapping":
                    self.gds_roots = {k.value: v.id for k, v in zip(node.value.keys, node.value.values)}
            elif isinstance(node, ast.FunctionDef) and node.name == "parse" and self.main_ns is None:
                for c in ast.walk(node):
                    if isinstance(c, ast.Call):
                        v = _kw(c, "namespacedef_")
                        if isinstance(v, ast.Constant):
                            mm = re.match(r'xmlns:[\w.\-]+="([^"]+)"', v.value)
                            if mm:
                                self.main_ns = mm.group(1)
        self.rename = rename
        for ns, defs in sorted(nsdefs.items()):
            for tname, xsd, kind in defs:
                if kind != "CT":
                    continue
                cls = rename.get("{%s}%s" % (ns, tname), tname)
                self.named[cls] = (ns, tname)
                if self.main_ns is None and os.path.basename(xsd) == self.xsd:
                    self.main_ns = ns

    def roots(self):
        """Classes of global elements with anonymous types that nothing refers to."""
        used = set()
        for c in self.classes.values():
            used.update(v for v in c.build.values() if v)
            if c.base:
                used.add(c.base)
        return [n for n in self.order if n not in self.named and n not in used
                and self.classes[n].children]


class GdsConverter:
    """Turns generateDS classes into table entries in the XSD path's format and keys."""

    def __init__(self, gen, xsd_scopes):
        self.gen = gen
        self.xsd_scopes = xsd_scopes  # namespaces whose types come from the XSDs
        self.types = {}
        self.anon_names = {}
        self.made_by = {}   # type key -> (module file, class)
        self.notes = []

    def prefix(self, ns):
        if ns not in self.gen.prefixes:
            m = re.search(r"/XOLTWS/([^/]+)/v[0-9.]+/?$", ns)
            seg = m.group(1) if m else ns.rstrip("/").rsplit("/", 1)[-1]
            p = KNOWN_PREFIXES.get(seg, seg.lower())
            used = set(self.gen.prefixes.values())
            base, n = p, 2
            while p in used:
                p = "%s%d" % (base, n)
                n += 1
            self.gen.prefixes[ns] = p
        return self.gen.prefixes[ns]

    def type_key(self, mod, cls, elem_ns, hint):
        """Type key (or None: text leaf) of class cls used by an element in elem_ns."""
        info = mod.classes.get(cls)
        if info is None:
            raise SystemExit("%s: class %s not found" % (mod.file, cls))
        if cls in mod.named:
            ns, tname = mod.named[cls]
            if ns in self.xsd_scopes:
                return self.gen.xsd_named_key(ns, tname, "%s %s" % (mod.file, cls))
            key = "%s:%s" % (self.prefix(ns), tname)
            cls_ns = ns
        else:
            is_global, owner, name = hint
            cls_ns = elem_ns
            if cls_ns in self.xsd_scopes:
                raise SystemExit("%s: anonymous %s in XSD namespace %s" % (mod.file, cls, cls_ns))
            if is_global:
                key = "%s:%s" % (self.prefix(cls_ns), name)
            else:
                key = "%s:%s@anon" % (self.prefix(cls_ns), name)
                prev = self.anon_names.get(key)
                if prev is not None and prev != (mod.file, cls):
                    key = "%s:%s/%s@anon" % (self.prefix(cls_ns), owner.split(":", 1)[1], name)
                self.anon_names.setdefault(key, (mod.file, cls))
        if info.has_value and not info.children and not info.base:
            return None  # simpleContent: text (plus attributes)
        if info.has_value:
            raise SystemExit("%s: %s: mixed content is not handled" % (mod.file, cls))
        if key in self.types:
            if self.made_by[key] != (mod.file, cls) and mod.file != self.made_by[key][0]:
                self.notes.append("%s from %s.%s also in %s.%s; using the first"
                                  % (key, self.made_by[key][0], self.made_by[key][1], mod.file, cls))
            return key
        self.types[key] = None  # placeholder: recursion stops here
        self.made_by[key] = (mod.file, cls)
        self.types[key] = self.content(mod, info, key, cls_ns)
        return key

    def content(self, mod, info, key, cls_ns):
        items = []
        if info.base:
            bkey = self.type_key(mod, info.base, cls_ns, (False, key, info.base))
            if bkey is not None:
                base_items = self.types.get(bkey)
                if base_items is None:
                    base_items = self.gen.types.get(bkey) or []
                items.extend(json.loads(json.dumps(base_items)))
            if not info.super_children:
                raise SystemExit("%s: %s extends %s but does not export its children"
                                 % (mod.file, info.name, info.base))
        order = [c["attr"] for c in info.children]
        params = [p for p in info.params if p in order or p.endswith("_member")]
        if [p[:-len("_member")] if p.endswith("_member") else p for p in params] != order:
            self.notes.append("%s %s: __init__ order differs from _exportChildren order"
                              % (mod.file, info.name))
        for c in info.children:
            name = c["name"]
            if c["ref"]:
                if c["ref"] not in GDS_PREFIX_URIS:
                    raise SystemExit("%s: %s: unknown prefix %s" % (mod.file, info.name, c["ref"]))
                ens, is_global = GDS_PREFIX_URIS[c["ref"]], True
            else:
                ens, is_global = cls_ns, False  # local element, elementFormDefault="qualified"
            if name not in info.build:
                raise SystemExit("%s: %s: %s is exported but not built" % (mod.file, info.name, name))
            child_cls = info.build[name]
            # generateDS 2.40.5 resolves a type name used inside an anonymous type to the
            # un-renamed class: void's SummaryResult/Status (void:CodeDescriptionType) gets
            # common's CodeDescriptionType, and so would rate:RateRequest/PickupType, whose
            # XSD here says rate:CodeDescriptionType. Take the renamed class of this namespace.
            renamed = mod.rename.get("{%s}%s" % (cls_ns, child_cls))
            if info.name not in mod.named and renamed and mod.named.get(child_cls, (cls_ns,))[0] != cls_ns:
                child_cls = renamed
            ctype = None
            if child_cls is not None:
                ctype = self.type_key(mod, child_cls, ens, (is_global, key, name))
            items.append({"name": name, "ns": ens, "type": ctype, "min": 0,
                          "max": None if c["attr"] in info.lists else 1})
        return items


def main(argv):
    index_only = "--index-only" in argv
    args = [a for a in argv if not a.startswith("--")]
    base = args[0] if args else os.path.join(ROOT, "target", "legacy-xsd")
    doc, index = Gen(base).run()
    with open(os.path.join(base, "index.json"), "w") as f:
        json.dump(index, f, indent=2, sort_keys=True)
        f.write("\n")
    if index_only:
        return
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    text = json.dumps(doc, indent=1, ensure_ascii=False)
    # One child per line keeps the file readable and its diffs small.
    text = compact_children(text)
    with open(OUT, "w") as f:
        f.write(text + "\n")
    n_types = len(doc["types"])
    n_roots = sum(len(v) for v in doc["roots"].values())
    print("wrote %s: %d roots, %d types" % (os.path.relpath(OUT, ROOT), n_roots, n_types))


def compact_children(text):
    """Re-emit with each child object of a type on one line (json.dumps can't do that)."""
    doc = json.loads(text)
    lines = ["{"]
    keys = list(doc.keys())
    for i, k in enumerate(keys):
        comma = "," if i < len(keys) - 1 else ""
        v = doc[k]
        if k == "types":
            lines.append(' "types": {')
            tkeys = list(v.keys())
            for j, tk in enumerate(tkeys):
                tcomma = "," if j < len(tkeys) - 1 else ""
                children = v[tk]
                if not children:
                    lines.append("  %s: []%s" % (json.dumps(tk), tcomma))
                    continue
                lines.append("  %s: [" % json.dumps(tk))
                for c, child in enumerate(children):
                    ccomma = "," if c < len(children) - 1 else ""
                    lines.append("   %s%s" % (json.dumps(child, ensure_ascii=False), ccomma))
                lines.append("  ]%s" % tcomma)
            lines.append(" }" + comma)
        elif k == "roots":
            lines.append(' "roots": {')
            rkeys = list(v.keys())
            for j, rk in enumerate(rkeys):
                rcomma = "," if j < len(rkeys) - 1 else ""
                lines.append("  %s: {" % json.dumps(rk))
                names = list(v[rk].keys())
                for n, name in enumerate(names):
                    ncomma = "," if n < len(names) - 1 else ""
                    lines.append("   %s: %s%s" % (json.dumps(name), json.dumps(v[rk][name]), ncomma))
                lines.append("  }%s" % rcomma)
            lines.append(" }" + comma)
        else:
            lines.append(" %s: %s%s" % (json.dumps(k), json.dumps(v, ensure_ascii=False), comma))
    lines.append("}")
    return "\n".join(lines)


if __name__ == "__main__":
    main(sys.argv[1:])
