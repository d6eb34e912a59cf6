#!/usr/bin/env python3
"""Drive py-ups-rest 0.0.5 (PyPI, sitolo 2021-01; import name `pyups`) through a base URL:
header-style JSON (AccessLicenseNumber/Username/Password headers, typed as the library's
`UPSHeader` TypedDict).

    py_ups_rest_driver.py BASE_URL ACCESS_KEY USER_ID PASSWORD SHIPPER_NUMBER

Performs a ship (`UPS.shipping.request`: POST /ship/V1801/shipments?additionaladdressvalidation=city)
and a track of the number it got (`UPS.tracking.get`: GET /track/v1/details/<number>), with
the library's public API only; both return the answer's JSON as dicts, which the driver reads.
The library's rate call (`UPS.rates.get`) is not used: it does `json.loads(response)` on the
requests.Response object itself, so it raises TypeError whatever the server answers (a bug of
the release; users of 0.0.5 could not rate with it).

Prints one JSON line with what the library returned; exit 0 on success, 1 with the error
(and the answer) on stderr otherwise.

No runtime shim. Base URL: `UPS.__init__` sets the slot `_base_url` to
`https://onlinetools.ups.com` (or wwwcie with production=False) and hands it to each service
object when first used; the driver sets `_base_url` to BASE_URL right after construction,
before any service is touched. Paths are the library's own.
"""
import base64
import json
import sys

from pyups import UPS


def main():
    base, key, user, password, shipper = sys.argv[1:6]
    ups = UPS(
        {
            "transId": "order-1001",
            "transactionSrc": "upsbridge-legacy-clients",
            "AccessLicenseNumber": key,
            "Username": user,
            "Password": password,
        },
        production=True,
    )
    # Given UPS's own URL (a hosts file or HTTPS_PROXY points it at upsbridge): nothing adjusted.
    if base.rstrip("/") != ups._base_url:
        ups._base_url = base.rstrip("/")

    def addr(line, city, state, postal):
        return {"AddressLine": [line], "City": city, "StateProvinceCode": state,
                "PostalCode": postal, "CountryCode": "US"}

    shipment = {
        "ShipmentRequest": {
            "Request": {"RequestOption": "nonvalidate",
                        "TransactionReference": {"CustomerContext": "order-1001"}},
            "Shipment": {
                "Description": "Books",
                "Shipper": {"Name": "East Warehouse", "AttentionName": "Sam Sender",
                            "Phone": {"Number": "3025550100"}, "ShipperNumber": shipper,
                            "Address": addr("10 Elm Rd", "Dover", "DE", "19901")},
                "ShipTo": {"Name": "Acme Corp", "AttentionName": "Jo Buyer",
                           "Phone": {"Number": "7755550199"},
                           "Address": addr("5 Oak Ave", "Reno", "NV", "89501")},
                "ShipFrom": {"Name": "East Warehouse", "AttentionName": "Sam Sender",
                             "Phone": {"Number": "3025550100"},
                             "Address": addr("10 Elm Rd", "Dover", "DE", "19901")},
                "PaymentInformation": {"ShipmentCharge": {"Type": "01", "BillShipper": {"AccountNumber": shipper}}},
                "Service": {"Code": "03", "Description": "UPS Ground"},
                "Package": {
                    "Description": "Books",
                    "Packaging": {"Code": "02"},
                    "Dimensions": {"UnitOfMeasurement": {"Code": "IN"}, "Length": "10", "Width": "8", "Height": "4"},
                    "PackageWeight": {"UnitOfMeasurement": {"Code": "LBS"}, "Weight": "3"},
                },
            },
            "LabelSpecification": {"LabelImageFormat": {"Code": "GIF"}},
        }
    }
    step, answer = "ship", None
    try:
        answer = ups.shipping.request(shipment)
        results = answer["ShipmentResponse"]["ShipmentResults"]
        pkg = results["PackageResults"]
        pkg = pkg[0] if isinstance(pkg, list) else pkg
        label = base64.b64decode(pkg["ShippingLabel"]["GraphicImage"])
        tn = pkg["TrackingNumber"]
        step, answer = "track", None
        answer = ups.tracking.get(tn)
        tshipment = answer["trackResponse"]["shipment"][0]
        tpkg = tshipment["package"][0]
        activity = tpkg.get("activity", [])
        out = {
            "library": "py-ups-rest 0.0.5",
            "shipment_id": results["ShipmentIdentificationNumber"],
            "tracking_number": tn,
            "ship_total": results["ShipmentCharges"]["TotalCharges"]["MonetaryValue"],
            "label_bytes": len(label),
            "label_is_gif": label[:4] == b"GIF8",
            "track_number": tpkg.get("trackingNumber"),
            "track_status": activity[0]["status"]["description"] if activity else None,
            "track_status_type": activity[0]["status"]["type"] if activity else None,
            "track_activity_count": len(activity),
        }
    except Exception as e:
        print(f"py-ups-rest {step} failed: {type(e).__name__}: {e}", file=sys.stderr)
        if answer is not None:
            print(f"answer: {json.dumps(answer)[:4000]}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
