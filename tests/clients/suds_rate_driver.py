#!/usr/bin/env python3
"""Drive suds 1.1.2 (PyPI `suds`, 2022: the maintained suds fork, API of suds 0.4;
WSDL-strict SOAP client) with UPS's RateWS.wsdl as bundled in PyPI `python-ups` 0.0.4
(2012), the way UPS integrations built on suds did (python-ups itself, liteview-ups,
python-ship): load the WSDL, set the UPSSecurity SOAP header, call `ProcessRate`, read the
objects suds unmarshals from the answer against the WSDL's schema.

    suds_rate_driver.py BASE_URL ACCESS_KEY USER_ID PASSWORD SHIPPER_NUMBER

Rate only: the bundled WSDL set has no Ship or Track service. (python-ups' own
`UPSClient.rate` cannot be used: it asks suds for a type `ns2:PickupType` that its own
bundled XSD does not define, so it raises TypeNotFound before sending anything, with any
suds.) Public suds API only.

Prints one JSON line with what suds parsed; exit 0 on success, 1 with suds' error and the
raw SOAP answer on stderr otherwise.

No runtime shim. Base URL: the bundled WSDL's <soap:address> is commented out (every user
supplied the endpoint), so the driver passes `location=BASE_URL + /webservices/Rate` to
`suds.client.Client`, the documented option.
"""
import json
import sys

from suds.cache import NoCache
from suds.client import Client
from suds.plugin import MessagePlugin

from ups_wsdl_request import rate_request, ratews_wsdl, security


class Keep(MessagePlugin):
    answer = None

    def received(self, context):
        Keep.answer = context.reply


def main():
    base, key, user, password, shipper = sys.argv[1:6]
    client = Client(
        "file://" + ratews_wsdl(),
        location=base.rstrip("/") + "/webservices/Rate",
        cache=NoCache(),
        plugins=[Keep()],
    )
    client.set_options(soapheaders={"UPSSecurity": security(key, user, password)})
    try:
        res = client.service.ProcessRate(**rate_request(shipper))
        shipments = res.RatedShipment
        rated = shipments[0]
        out = {
            "library": "suds 1.1.2 + python-ups 0.0.4 RateWS.wsdl",
            "rate_status_code": str(res.Response.ResponseStatus.Code),
            "rate_count": len(shipments),
            "rate_service": str(rated.Service.Code),
            "rate_total": str(rated.TotalCharges.MonetaryValue),
            "rate_currency": str(rated.TotalCharges.CurrencyCode),
            "rate_billing_weight": str(rated.BillingWeight.Weight),
        }
    except Exception as e:  # suds raises WebFault / TypeNotFound / SAX errors
        print(f"suds ProcessRate failed: {type(e).__name__}: {e}", file=sys.stderr)
        if Keep.answer is not None:
            print(f"answer: {Keep.answer!r}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
