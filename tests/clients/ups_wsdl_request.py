"""The RateRequest both WSDL-strict SOAP drivers (suds_rate_driver.py, zeep_rate_driver.py)
send, as plain dicts in the shape of UPS's RateWS.wsdl (Rate/v1.1) as bundled in PyPI
`python-ups` 0.0.4 (ups/wsdl/): what a UPS integration built on suds or zeep filled in."""
import importlib.util
import os


def ratews_wsdl():
    """Path of RateWS.wsdl inside the installed python-ups 0.0.4 (not imported: it is Python 2)."""
    spec = importlib.util.find_spec("ups")
    for d in spec.submodule_search_locations:
        p = os.path.join(d, "wsdl", "RateWS.wsdl")
        if os.path.exists(p):
            return p
    raise SystemExit("python-ups 0.0.4's ups/wsdl/RateWS.wsdl not found")


def security(key, user, password):
    return {
        "UsernameToken": {"Username": user, "Password": password},
        "ServiceAccessToken": {"AccessLicenseNumber": key},
    }


def address(line, city, state, postal):
    return {"AddressLine": [line], "City": city, "StateProvinceCode": state,
            "PostalCode": postal, "CountryCode": "US"}


def rate_request(shipper_number):
    return dict(
        Request={"RequestOption": "Rate", "TransactionReference": {"CustomerContext": "order-1001"}},
        PickupType={"Code": "01", "Description": "Daily Pickup"},
        Shipment={
            "Shipper": {"Name": "East Warehouse", "ShipperNumber": shipper_number,
                        "Address": address("10 Elm Rd", "Dover", "DE", "19901")},
            "ShipTo": {"Name": "Acme Corp", "Address": address("5 Oak Ave", "Reno", "NV", "89501")},
            "ShipFrom": {"Name": "East Warehouse", "Address": address("10 Elm Rd", "Dover", "DE", "19901")},
            "Service": {"Code": "03", "Description": "UPS Ground"},
            "Package": [{
                "PackagingType": {"Code": "02"},
                "Dimensions": {"UnitOfMeasurement": {"Code": "IN"}, "Length": "10", "Width": "8", "Height": "4"},
                "PackageWeight": {"UnitOfMeasurement": {"Code": "LBS"}, "Weight": "3"},
            }],
        },
    )
