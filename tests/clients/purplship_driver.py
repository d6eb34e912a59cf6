#!/usr/bin/env python3
"""Drive purplship 2022.2 + purplship.ups 2022.2 (PyPI, SOAP at /webservices) through a base URL.

    purplship_driver.py BASE_URL ACCESS_KEY USER_ID PASSWORD SHIPPER_NUMBER

Performs a rate (`purplship.Rating.fetch`, SOAP RateRequest to /webservices/Rate) and a
ship (`purplship.Shipment.create`, SOAP ShipmentRequest to /webservices/Ship), using the
library's public API only. Prints one JSON line with what the library parsed; exit 0 on
success, 1 with the library's messages on stderr otherwise.

Two documented adjustments, neither touching how purplship builds or parses SOAP:
* runtime shim: purplship 2022.x supports Python 3.7-3.10. Python 3.11 refuses `enum.Flag`
  members whose values are not integers, which purplship.providers.ups.units uses as
  lookup tables (`PackagingType`, `LabelType`, `PackagePresets`: never combined with |
  or &). We make `purplship.core.utils.Flag` the library's own `Enum` (same metaclass,
  same lookups) before the UPS provider is imported, which is how Python <= 3.10
  treated those members.
* base URL: the UPS host is the `server_url` property of
  `purplship.providers.ups.utils.Settings` (`https://onlinetools.ups.com` or, with
  test=True, `https://wwwcie.ups.com`); we override that property to return BASE_URL.
  The paths (/webservices/Rate, /webservices/Ship) are the library's own.
"""
import json
import sys

import purplship.core.utils as _pu_utils  # noqa: E402
import purplship.core.utils.enum as _pu_enum  # noqa: E402

_pu_utils.Flag = _pu_enum.Flag = _pu_enum.Enum  # Python 3.11 shim (see above)

import purplship  # noqa: E402
import purplship.providers.ups.utils as ups_utils  # noqa: E402
from purplship.core.models import (  # noqa: E402
    Address,
    Parcel,
    Payment,
    RateRequest,
    ShipmentRequest,
)


def messages_text(messages):
    return "; ".join(f"{m.code}: {m.message}" for m in messages)


def main():
    base, key, user, password, shipper = sys.argv[1:6]
    # Given UPS's own URL (a hosts file or HTTPS_PROXY points it at upsbridge): nothing adjusted.
    base = base.rstrip("/")
    if base != "https://onlinetools.ups.com":  # the library's own with test_mode False
        ups_utils.Settings.server_url = property(lambda self: base)

    gateway = purplship.gateway["ups"].create(
        {
            "username": user,
            "password": password,
            "access_license_number": key,
            "account_number": shipper,
            "test": False,
        }
    )
    shipper_addr = Address(
        company_name="East Warehouse",
        person_name="Sam Sender",
        phone_number="3025550100",
        address_line1="10 Elm Rd",
        city="Dover",
        state_code="DE",
        postal_code="19901",
        country_code="US",
    )
    recipient = Address(
        company_name="Acme Corp",
        person_name="Jo Buyer",
        phone_number="7755550199",
        address_line1="5 Oak Ave",
        city="Reno",
        state_code="NV",
        postal_code="89501",
        country_code="US",
    )
    parcel = Parcel(
        weight=3.0,
        length=10.0,
        width=8.0,
        height=4.0,
        weight_unit="LB",
        dimension_unit="IN",
        packaging_type="your_packaging",
        description="Books",
    )

    rates, messages = purplship.Rating.fetch(
        RateRequest(
            shipper=shipper_addr,
            recipient=recipient,
            parcels=[parcel],
            services=["ups_ground"],
            reference="order-1001",
        )
    ).from_(gateway).parse()
    if not rates:
        print(f"purplship rate failed: {messages_text(messages) or 'no rates'}", file=sys.stderr)
        sys.exit(1)
    rate = rates[0]

    shipment, messages = purplship.Shipment.create(
        ShipmentRequest(
            service="ups_ground",
            shipper=shipper_addr,
            recipient=recipient,
            parcels=[parcel],
            payment=Payment(paid_by="sender", account_number=shipper),
            reference="order-1001",
            label_type="PDF_6x4",
        )
    ).from_(gateway).parse()
    if shipment is None:
        print(f"purplship ship failed: {messages_text(messages) or 'no shipment'}", file=sys.stderr)
        sys.exit(1)
    label = shipment.docs.label if shipment.docs else None
    print(
        json.dumps(
            {
                "library": "purplship.ups 2022.2",
                "rate_service": rate.service,
                "rate_total": rate.total_charge,
                "rate_currency": rate.currency,
                "tracking_number": shipment.tracking_number,
                "shipment_id": shipment.shipment_identifier,
                "label_pdf_base64_chars": len(label or ""),
                "label_is_pdf": (label or "").startswith("JVBER"),
                "messages": [m.message for m in messages],
            }
        )
    )


if __name__ == "__main__":
    main()
