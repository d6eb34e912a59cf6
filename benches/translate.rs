//! Translation throughput per dialect for one rate request: parse (credentials
//! out, REST call built) + the answer for a canned REST `RateResponse`. No
//! network: this measures upsbridge's own work. Header style (path map +
//! credential headers, body streamed) is the baseline; after the criterion
//! groups, a same-run timed loop prints requests/s per dialect and its ratio
//! to the header dialect.
//!
//! Run: `cargo bench --bench translate`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use http::Method;
use upsbridge::dialect::{header, legacy_json, oldxml, soap, CannedUps, Fields, Parsed, Route};

/// The allocator `upsbridge serve` runs with, so the figures are the product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const REST_ANSWER: &str = r#"{"RateResponse":{"Response":{"ResponseStatus":{"Code":"1","Description":"Success"},"TransactionReference":{"CustomerContext":"cart-4411"}},"RatedShipment":{"Service":{"Code":"02","Description":"UPS 2nd Day Air"},"RatedShipmentAlert":[{"Code":"110971","Description":"Your invoice may vary from the displayed reference rates"}],"BillingWeight":{"UnitOfMeasurement":{"Code":"LBS","Description":"Pounds"},"Weight":"3.0"},"TransportationCharges":{"CurrencyCode":"USD","MonetaryValue":"21.35"},"BaseServiceCharge":{"CurrencyCode":"USD","MonetaryValue":"21.35"},"ServiceOptionsCharges":{"CurrencyCode":"USD","MonetaryValue":"0.00"},"TotalCharges":{"CurrencyCode":"USD","MonetaryValue":"21.35"},"NegotiatedRateCharges":{"TotalCharge":{"CurrencyCode":"USD","MonetaryValue":"18.15"}},"RatedPackage":{"TransportationCharges":{"CurrencyCode":"USD","MonetaryValue":"21.35"},"ServiceOptionsCharges":{"CurrencyCode":"USD","MonetaryValue":"0.00"},"TotalCharges":{"CurrencyCode":"USD","MonetaryValue":"21.35"},"Weight":"3.0","BillingWeight":{"UnitOfMeasurement":{"Code":"LBS","Description":"Pounds"},"Weight":"3.0"}},"GuaranteedDelivery":{"BusinessDaysInTransit":"2"}}}}"#;

const SHIPMENT_JSON: &str = r#"{"Shipper":{"ShipperNumber":"9Y9Y9Y","Address":{"AddressLine":["10 Elm Rd"],"City":"Dover","StateProvinceCode":"DE","PostalCode":"19901","CountryCode":"US"}},"ShipTo":{"Name":"Acme","Address":{"AddressLine":["5 Oak Ave"],"City":"Reno","StateProvinceCode":"NV","PostalCode":"89501","CountryCode":"US","ResidentialAddressIndicator":""}},"Service":{"Code":"02"},"Package":[{"PackagingType":{"Code":"02"},"PackageWeight":{"UnitOfMeasurement":{"Code":"LBS"},"Weight":"3"}}],"ShipmentRatingOptions":{"NegotiatedRatesIndicator":""}}"#;

fn legacy_json_body() -> String {
    format!(
        r#"{{"UPSSecurity":{{"UsernameToken":{{"Username":"legacyuser","Password":"legacypass"}},"ServiceAccessToken":{{"AccessLicenseNumber":"ACCESSKEY123"}}}},"RateRequest":{{"Request":{{"RequestOption":"Rate","TransactionReference":{{"CustomerContext":"cart-4411"}}}},"Shipment":{SHIPMENT_JSON}}}}}"#
    )
}

const SOAP_BODY: &str = r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:upss="http://www.ups.com/XMLSchema/XOLTWS/UPSS/v1.0" xmlns:common="http://www.ups.com/XMLSchema/XOLTWS/Common/v1.0"><soapenv:Header><upss:UPSSecurity><upss:UsernameToken><upss:Username>legacyuser</upss:Username><upss:Password>legacypass</upss:Password></upss:UsernameToken><upss:ServiceAccessToken><upss:AccessLicenseNumber>ACCESSKEY123</upss:AccessLicenseNumber></upss:ServiceAccessToken></upss:UPSSecurity></soapenv:Header><soapenv:Body><rate:RateRequest xmlns:rate="http://www.ups.com/XMLSchema/XOLTWS/Rate/v1.1"><common:Request><common:RequestOption>Rate</common:RequestOption><common:TransactionReference><common:CustomerContext>cart-4411</common:CustomerContext></common:TransactionReference></common:Request><rate:Shipment><rate:Shipper><rate:ShipperNumber>9Y9Y9Y</rate:ShipperNumber><rate:Address><rate:AddressLine>10 Elm Rd</rate:AddressLine><rate:City>Dover</rate:City><rate:StateProvinceCode>DE</rate:StateProvinceCode><rate:PostalCode>19901</rate:PostalCode><rate:CountryCode>US</rate:CountryCode></rate:Address></rate:Shipper><rate:ShipTo><rate:Name>Acme</rate:Name><rate:Address><rate:AddressLine>5 Oak Ave</rate:AddressLine><rate:City>Reno</rate:City><rate:StateProvinceCode>NV</rate:StateProvinceCode><rate:PostalCode>89501</rate:PostalCode><rate:CountryCode>US</rate:CountryCode><rate:ResidentialAddressIndicator/></rate:Address></rate:ShipTo><rate:Service><rate:Code>02</rate:Code></rate:Service><rate:Package><rate:PackagingType><rate:Code>02</rate:Code></rate:PackagingType><rate:PackageWeight><rate:UnitOfMeasurement><rate:Code>LBS</rate:Code></rate:UnitOfMeasurement><rate:Weight>3</rate:Weight></rate:PackageWeight></rate:Package><rate:ShipmentRatingOptions><rate:NegotiatedRatesIndicator/></rate:ShipmentRatingOptions></rate:Shipment></rate:RateRequest></soapenv:Body></soapenv:Envelope>"#;

const OLD_XML_BODY: &str = "<?xml version=\"1.0\"?>\n<AccessRequest xml:lang=\"en-US\"><AccessLicenseNumber>ACCESSKEY123</AccessLicenseNumber><UserId>legacyuser</UserId><Password>legacypass</Password></AccessRequest>\n<?xml version=\"1.0\"?>\n<RatingServiceSelectionRequest><Request><TransactionReference><CustomerContext>cart-4411</CustomerContext></TransactionReference><RequestAction>Rate</RequestAction><RequestOption>Rate</RequestOption></Request><Shipment><Shipper><ShipperNumber>9Y9Y9Y</ShipperNumber><Address><AddressLine1>10 Elm Rd</AddressLine1><City>Dover</City><StateProvinceCode>DE</StateProvinceCode><PostalCode>19901</PostalCode><CountryCode>US</CountryCode></Address></Shipper><ShipTo><CompanyName>Acme</CompanyName><Address><AddressLine1>5 Oak Ave</AddressLine1><City>Reno</City><StateProvinceCode>NV</StateProvinceCode><PostalCode>89501</PostalCode><CountryCode>US</CountryCode><ResidentialAddressIndicator/></Address></ShipTo><Service><Code>02</Code></Service><Package><PackagingType><Code>02</Code></PackagingType><PackageWeight><UnitOfMeasurement><Code>LBS</Code></UnitOfMeasurement><Weight>3</Weight></PackageWeight></Package><RateInformation><NegotiatedRatesIndicator/></RateInformation></Shipment></RatingServiceSelectionRequest>";

/// The fields as the express lane lends them.
const HEADER_FIELDS: [(&[u8], &[u8]); 4] = [
    (b"AccessLicenseNumber", b"ACCESSKEY123"),
    (b"Username", b"legacyuser"),
    (b"Password", b"legacypass"),
    (b"Content-Type", b"application/json"),
];

/// One request + answer per dialect; returns the answer size so nothing is optimised away.
fn header_once(h: Fields<'_>, answer: &Bytes) -> usize {
    let target = header::map(&Method::POST, "/ship/v1801/rating/Rate", None, true).expect("mapped");
    let creds = header::credentials(h).expect("each credential once");
    // The body and the answer stream through untouched.
    target.path_and_query.len() + creds.access_key.as_str().len() + answer.len()
}

/// A parsed request's exchange against UPS answering `answer`: the sizes of the REST body
/// sent and the client's answer.
fn exchanged(parsed: Parsed, answer: &Bytes) -> usize {
    let mut ups = CannedUps::new(200, answer.clone());
    let a = ups.run(parsed.request).expect("answered");
    let sent = ups
        .calls
        .first()
        .and_then(|(_, b)| b.as_ref())
        .map_or(0, Bytes::len);
    sent + a.body.len()
}

fn legacy_json_once(body: &[u8], answer: &Bytes) -> usize {
    exchanged(legacy_json::parse(body).expect("parsed"), answer)
}

fn soap_once(body: &[u8], answer: &Bytes) -> usize {
    exchanged(soap::parse(body).expect("parsed"), answer)
}

fn old_xml_once(route: &Route, body: &[u8], answer: &Bytes) -> usize {
    exchanged(oldxml::parse(route, body).expect("parsed"), answer)
}

fn rate_per_sec(mut f: impl FnMut() -> usize) -> f64 {
    for _ in 0..200 {
        black_box(f());
    }
    let window = Duration::from_secs(2);
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < window {
        for _ in 0..100 {
            black_box(f());
        }
        n += 100;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let answer = Bytes::from_static(REST_ANSWER.as_bytes());
    let headers = Fields::Raw(&HEADER_FIELDS);
    let json_body = legacy_json_body();
    let route = Route {
        dialect: &upsbridge::dialect::oldxml::OldXml,
        service: "Rate".into(),
    };

    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    {
        let mut g = c.benchmark_group("rate_parse_to_rest_answer");
        g.throughput(Throughput::Elements(1));
        g.bench_function("header", |b| {
            b.iter(|| header_once(black_box(headers), &answer))
        });
        g.bench_function("legacy_json", |b| {
            b.iter(|| legacy_json_once(black_box(json_body.as_bytes()), &answer))
        });
        g.bench_function("soap", |b| {
            b.iter(|| soap_once(black_box(SOAP_BODY.as_bytes()), &answer))
        });
        g.bench_function("old_xml", |b| {
            b.iter(|| old_xml_once(&route, black_box(OLD_XML_BODY.as_bytes()), &answer))
        });
        g.finish();
    }
    c.final_summary();

    // Same-run ratios against the header dialect.
    let base = rate_per_sec(|| header_once(black_box(headers), &answer));
    let rows = [
        (
            "legacy_json",
            rate_per_sec(|| legacy_json_once(black_box(json_body.as_bytes()), &answer)),
        ),
        (
            "soap",
            rate_per_sec(|| soap_once(black_box(SOAP_BODY.as_bytes()), &answer)),
        ),
        (
            "old_xml",
            rate_per_sec(|| old_xml_once(&route, black_box(OLD_XML_BODY.as_bytes()), &answer)),
        ),
    ];
    println!("\nrate request, parse + to_rest + answer, requests/s (same run):");
    println!("  header       {base:>12.0}  1.000x");
    for (name, r) in rows {
        println!("  {name:<12} {r:>12.0}  {:.3}x of header", r / base);
    }
}
