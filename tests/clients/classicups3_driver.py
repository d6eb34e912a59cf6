#!/usr/bin/env python3
"""Drive ClassicUPS3 0.1.8 (PyPI `ClassicUPS3`, 2020: the Python 3 release of ClassicUPS,
old XML at /ups.app/xml) through a base URL.

    classicups3_driver.py BASE_URL ACCESS_KEY USER_ID PASSWORD SHIPPER_NUMBER

ClassicUPS has no rating call of its own: `create_shipment` sends ShipConfirm (which
prices the shipment: the library exposes that price as `Shipment.cost`, its "rate")
and then ShipAccept with the digest (the label, `Shipment.get_label()`). Everything
below goes through the library's public API only.

Prints one JSON line with what the library parsed; exit 0 on success, 1 with the
library's error (and the raw answers it got) on stderr otherwise.

No runtime shim is needed. One documented adjustment, not touching how the library
builds or parses XML:
* base URL: the library keeps its endpoints in the class attribute
  `UPSConnection.production_urls` (`https://onlinetools.ups.com/ups.app/xml/<Svc>`);
  we replace the scheme+host part with BASE_URL, keeping the paths.
"""
import json
import sys

from ClassicUPS3.ups import UPSConnection

PRODUCTION = "https://onlinetools.ups.com"


def main():
    base, key, user, password, shipper = sys.argv[1:6]
    # Given UPS's own URL (a hosts file or HTTPS_PROXY points it at upsbridge): nothing adjusted.
    base = base.rstrip("/")
    if base != PRODUCTION:
        UPSConnection.production_urls = {
            k: base + v[len(PRODUCTION):] for k, v in UPSConnection.production_urls.items()
        }

    ups = UPSConnection(key, user, password, shipper_number=shipper, debug=False)
    from_addr = {
        "name": "East Warehouse",
        "address1": "10 Elm Rd",
        "city": "Dover",
        "state": "DE",
        "postal_code": "19901",
        "country": "US",
        "phone": "3025550100",
    }
    to_addr = {
        "name": "Acme Corp",
        "attn": "Jo Buyer",
        "address1": "5 Oak Ave",
        "city": "Reno",
        "state": "NV",
        "postal_code": "89501",
        "country": "US",
        "phone": "7755550199",
    }
    shipment = None
    try:
        shipment = ups.create_shipment(
            from_addr,
            to_addr,
            dimensions={"length": 10, "width": 8, "height": 4},
            weight=3,
            file_format="GIF",
            reference_numbers=["order-1001"],
            shipping_service="ground",
            description="Books",
        )
        label = shipment.get_label()
        accept = shipment.accept_result.dict_response["ShipmentAcceptResponse"]
        results = accept["ShipmentResults"]
        out = {
            "library": "ClassicUPS3 0.1.8",
            "rate_total": shipment.cost,
            "tracking_number": shipment.tracking_number,
            "accept_shipment_id": results.get("ShipmentIdentificationNumber"),
            "accept_tracking_number": results["PackageResults"].get("TrackingNumber"),
            "accept_total": results.get("ShipmentCharges", {}).get("TotalCharges", {}).get("MonetaryValue"),
            "label_bytes": len(label),
            "label_is_gif": label[:4] == b"GIF8",
        }
    except Exception as e:  # the library raises plain Exception / KeyError
        print(f"ClassicUPS3 failed: {type(e).__name__}: {e}", file=sys.stderr)
        for step in ("confirm_result", "accept_result"):
            r = getattr(shipment, step, None)
            if r is not None:
                print(f"{step}: {r.xml_response!r}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
