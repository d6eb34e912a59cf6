#!/usr/bin/env python3
"""Drive zeep 4.2.1 (PyPI, 2022: WSDL-strict SOAP client) with UPS's RateWS.wsdl as bundled in
PyPI `python-ups` 0.0.4 (2012), the way UPS integrations built on zeep did: load the WSDL,
call `ProcessRate` with the UPSSecurity SOAP header, read the typed answer objects zeep
builds from the WSDL's schema (strict mode: unknown or out-of-order elements are errors).

    zeep_rate_driver.py BASE_URL ACCESS_KEY USER_ID PASSWORD SHIPPER_NUMBER

Rate only: the bundled WSDL set (RateWS.wsdl, RateWebServiceSchema.xsd, common.xsd,
UPSSecurity.xsd, Error1.1.xsd) has no Ship or Track service. Public API only.

Prints one JSON line with what zeep parsed; exit 0 on success, 1 with zeep's error and the
raw SOAP answer on stderr otherwise.

No runtime shim. Base URL: the bundled WSDL's <soap:address> is commented out (every user
supplied the endpoint), so the driver binds the WSDL's RateBinding to
BASE_URL + /webservices/Rate with zeep's public `Client.create_service(binding, address)`.
"""
import json
import sys

from lxml import etree
from zeep import Client, Settings
from zeep.plugins import HistoryPlugin

from ups_wsdl_request import rate_request, ratews_wsdl, security

BINDING = "{http://www.ups.com/WSDL/XOLTWS/Rate/v1.1}RateBinding"


def main():
    base, key, user, password, shipper = sys.argv[1:6]
    history = HistoryPlugin()
    client = Client(ratews_wsdl(), settings=Settings(strict=True), plugins=[history])
    service = client.create_service(BINDING, base.rstrip("/") + "/webservices/Rate")
    try:
        res = service.ProcessRate(
            **rate_request(shipper), _soapheaders={"UPSSecurity": security(key, user, password)}
        )
        shipments = res.RatedShipment
        rated = shipments[0]
        out = {
            "library": "zeep 4.2.1 + python-ups 0.0.4 RateWS.wsdl",
            "rate_status_code": res.Response.ResponseStatus.Code,
            "rate_count": len(shipments),
            "rate_service": rated.Service.Code,
            "rate_total": rated.TotalCharges.MonetaryValue,
            "rate_currency": rated.TotalCharges.CurrencyCode,
            "rate_billing_weight": rated.BillingWeight.Weight,
            "rate_packages": len(rated.RatedPackage or []),
        }
    except Exception as e:  # zeep raises Fault / XMLParseError / TransportError / ValidationError
        print(f"zeep ProcessRate failed: {type(e).__name__}: {e}", file=sys.stderr)
        if history.last_received is not None:
            env = history.last_received["envelope"]
            print("answer: " + etree.tostring(env).decode(), file=sys.stderr)
        sys.exit(1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
