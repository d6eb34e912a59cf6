#!/usr/bin/env python3
"""Drive karrio 2023.3 + karrio.ups 2023.3 (PyPI, 2023-03; purplship's successor) through a
base URL. Installed in its own venv (target/client-venv2): it needs carrier.ups 2023.3 (the
generated UPS schema classes, `ups_lib`), which conflicts with the carrier.ups 2020.11 that
purplship 2022.2 needs in target/client-venv.

    karrio_driver.py BASE_URL ACCESS_KEY USER_ID PASSWORD SHIPPER_NUMBER

Performs a rate (`karrio.Rating.fetch`: SOAP RateRequest to /webservices/Rate), a ship
(`karrio.Shipment.create`: SOAP ShipmentRequest to /webservices/Ship) and a track
(`karrio.Tracking.fetch`: header-style JSON, GET /track/v1/details/<number> with
AccessLicenseNumber/Username/Password headers) of the number the ship answer gave, with the
library's public API only. SOAP answers are parsed into generateDS classes (carrier.ups
`ups_lib.rate_web_service_schema`, `ship_web_service_schema`), the track answer into
`ups_lib.rest_tracking_response` classes; results are karrio's typed models
(RateDetails, ShipmentDetails, TrackingDetails).

Prints one JSON line with what the library parsed; exit 0 on success, 1 with the library's
messages (and the raw answers it got) on stderr otherwise.

Two documented adjustments, neither touching how karrio builds or parses requests:
* runtime shim: the same as purplship's. karrio 2023.3 supports Python 3.7-3.10; Python 3.11
  refuses `enum.Flag` members whose values are not integers, which
  karrio.providers.ups.units uses as lookup tables (`PackagePresets`, `LabelType`,
  `PackagingType`, `UploadDocumentType`: never combined with | or &). We make
  `karrio.core.utils.Flag` (re-exported as `karrio.lib.Flag`) the library's own `Enum`
  (same metaclass, same lookups) before the UPS provider is imported.
* base URL: the UPS host is the `server_url` property of
  `karrio.providers.ups.utils.Settings` (`https://onlinetools.ups.com`, or
  `https://wwwcie.ups.com` with test_mode); we override that property to return BASE_URL.
  The paths are the library's own.
"""
import json
import sys

import karrio.core.utils as _k_utils  # noqa: E402
import karrio.core.utils.enum as _k_enum  # noqa: E402

_k_utils.Flag = _k_enum.Flag = _k_enum.Enum  # Python 3.11 shim (see above)

import karrio  # noqa: E402
import karrio.lib as _k_lib  # noqa: E402

_k_lib.Flag = _k_enum.Enum  # karrio.lib re-exports it (shim, see above)

import karrio.providers.ups.utils as ups_utils  # noqa: E402
from karrio.core.models import (  # noqa: E402
    Address,
    Parcel,
    Payment,
    RateRequest,
    ShipmentRequest,
    TrackingRequest,
)


def messages_text(messages):
    return "; ".join(f"{m.code}: {m.message}" for m in messages)


def fail(step, messages, tracer=None):
    print(f"karrio {step} failed: {messages_text(messages) or 'nothing parsed'}", file=sys.stderr)
    if tracer is not None:
        for rec in getattr(tracer, "records", []) or []:
            print(f"trace {rec.key}: {str(rec.data)[:4000]}", file=sys.stderr)
    sys.exit(1)


def main():
    base, key, user, password, shipper = sys.argv[1:6]
    # Given UPS's own URL (a hosts file or HTTPS_PROXY points it at upsbridge): nothing adjusted.
    base = base.rstrip("/")
    if base != "https://onlinetools.ups.com":  # the library's own with test_mode False
        ups_utils.Settings.server_url = property(lambda self: base)

    gateway = karrio.gateway["ups"].create(
        {
            "username": user,
            "password": password,
            "access_license_number": key,
            "account_number": shipper,
            "test_mode": False,
        }
    )
    shipper_addr = Address(
        company_name="East Warehouse", person_name="Sam Sender", phone_number="3025550100",
        address_line1="10 Elm Rd", city="Dover", state_code="DE", postal_code="19901",
        country_code="US",
    )
    recipient = Address(
        company_name="Acme Corp", person_name="Jo Buyer", phone_number="7755550199",
        address_line1="5 Oak Ave", city="Reno", state_code="NV", postal_code="89501",
        country_code="US",
    )
    parcel = Parcel(
        weight=3.0, length=10.0, width=8.0, height=4.0, weight_unit="LB",
        dimension_unit="IN", packaging_type="your_packaging", description="Books",
    )

    try:
        rates, messages = karrio.Rating.fetch(
            RateRequest(shipper=shipper_addr, recipient=recipient, parcels=[parcel],
                        services=["ups_ground"], reference="order-1001")
        ).from_(gateway).parse()
    except Exception as e:
        print(f"karrio rate raised {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
    if not rates:
        fail("rate", messages)
    rate = rates[0]

    try:
        shipment, messages = karrio.Shipment.create(
            ShipmentRequest(service="ups_ground", shipper=shipper_addr, recipient=recipient,
                            parcels=[parcel], payment=Payment(paid_by="sender", account_number=shipper),
                            reference="order-1001", label_type="PDF")
        ).from_(gateway).parse()
    except Exception as e:
        print(f"karrio ship raised {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
    if shipment is None:
        fail("ship", messages)
    label = shipment.docs.label if shipment.docs else None

    try:
        tracks, messages = karrio.Tracking.fetch(
            TrackingRequest(tracking_numbers=[shipment.tracking_number])
        ).from_(gateway).parse()
    except Exception as e:
        print(f"karrio track raised {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
    if not tracks:
        fail("track", messages)
    track = tracks[0]
    print(
        json.dumps(
            {
                "library": "karrio.ups 2023.3",
                "rate_service": rate.service,
                "rate_total": rate.total_charge,
                "rate_currency": rate.currency,
                "tracking_number": shipment.tracking_number,
                "shipment_id": shipment.shipment_identifier,
                "label_chars": len(label or ""),
                "label_is_pdf": (label or "").startswith("JVBER"),
                "track_number": track.tracking_number,
                "track_status": track.status,
                "track_delivered": track.delivered,
                "track_activity_count": len(track.events or []),
                "track_first_event": (track.events[0].description if track.events else None),
                "messages": [m.message for m in messages],
            },
            default=str,
        )
    )


if __name__ == "__main__":
    main()
