//! Old XML: `/ups.app/xml/<Svc>`, the oldest UPS dialect. A body is two XML
//! documents back to back: an `AccessRequest` (the credentials) and the service
//! request (`RatingServiceSelectionRequest`, `TrackRequest`, …). The first is
//! read for credentials and never forwarded; the second is converted to JSON,
//! rewritten to XOLTWS/REST names by the declarative [`Rule`] tables below,
//! normalised to the REST schema's arrays and mapped by [`services`]. Answers are
//! built by the [`Field`] templates below (or code where the structure differs:
//! Track, AV ranks), always HTTP 200 with `Response/ResponseStatusCode` 1 or 0 and
//! `Response/Error`, echoing `CustomerContext` and `XpciVersion`.
//!
//! ShipConfirm/ShipAccept are this dialect's own exchange with UPS: confirm prices
//! the translated ship request with one Rate call and has the ship call prepared
//! under a digest ([`Ups::prepare`]); accept makes it, once
//! ([`Ups::make_prepared`]). Never log or echo `AccessRequest` content.

use std::sync::{LazyLock, OnceLock};

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::onepass;
use super::schema::{self, f, stream, Field, Rule, Src};
use super::services::{self, AnswerShape, RestBody, RestCall, Service};
use super::tree::{self, Node};
use super::xmljson::{self, Element};
use super::{
    json_text, rest_errors, Answer, Answered, Dialect, Failure, Head, Parsed, Request, Route,
    Severity, Ups, UpsError,
};
use crate::accounts::LegacyCredentials;

/// What UPS sent (legacy-dialects §5.1): a Node client picks its parser by this type and
/// reads `text/*` as a string, not as XML.
const CONTENT_TYPE: &str = "application/xml";

pub use super::old_service::OldService;

impl OldService {
    /// The XOLTWS service the rewritten request is handed to, and its request root
    /// (whose schema arrays apply).
    fn xoltws(self) -> (Service, &'static str) {
        match self {
            OldService::Rate | OldService::ShipConfirm => (Service::Rate, "RateRequest"),
            OldService::Track => (Service::Track, "TrackRequest"),
            OldService::ShipAccept => (Service::Ship, "ShipmentRequest"),
            OldService::Void => (Service::Void, "VoidShipmentRequest"),
            OldService::TimeInTransit => (Service::TimeInTransit, "TimeInTransitRequest"),
            OldService::Av | OldService::Xav => (Service::Xav, "XAVRequest"),
        }
    }

    fn rules(self) -> &'static [&'static [Rule]] {
        match self {
            OldService::Rate => &[COMMON, PARTIES, RATE],
            OldService::ShipConfirm => &[COMMON, PARTIES, SHIP],
            OldService::ShipAccept => &[COMMON],
            OldService::Void => &[COMMON, VOID],
            OldService::Track => &[COMMON, TRACK],
            OldService::TimeInTransit => &[COMMON, TNT],
            OldService::Xav => &[COMMON],
            OldService::Av => &[COMMON, AV],
        }
    }

    /// [`Self::rules`] compiled for one pass, once per service. `None` for a service not in
    /// [`OldService::ALL`], which then takes the tree path.
    fn one_pass_rules(self) -> Option<&'static onepass::Rules> {
        static COMPILED: OnceLock<Vec<(OldService, onepass::Rules)>> = OnceLock::new();
        let compiled = COMPILED.get_or_init(|| {
            OldService::ALL
                .into_iter()
                .map(|svc| (svc, onepass::Rules::new(svc.rules())))
                .collect()
        });
        compiled
            .iter()
            .find(|(svc, _)| *svc == self)
            .map(|(_, rules)| rules)
    }
}

// ---- request tables (legacy-dialects §4.2) ----------------------------------------------------

/// Every service: routing comes from the path; `XpciVersion` is echoed, not sent.
const COMMON: &[Rule] = &[
    Rule::Drop("Request/RequestAction"),
    Rule::Last("Request/RequestOption"),
    Rule::Drop("Request/TransactionReference/XpciVersion"),
    Rule::Drop("Request/TransactionReference/ToolVersion"),
];

/// Parties, addresses and options shared by Rate and ShipConfirm.
const PARTIES: &[Rule] = &[
    Rule::Rename("Shipment/*/CompanyName", "Name"),
    Rule::Collect(
        "**/Address",
        &["AddressLine1", "AddressLine2", "AddressLine3"],
        "AddressLine",
    ),
    Rule::Rename(
        "**/Address/ResidentialAddress",
        "ResidentialAddressIndicator",
    ),
    Rule::Move("Shipment/RateInformation", "Shipment/ShipmentRatingOptions"),
    Rule::Rename(
        "Shipment/ShipmentServiceOptions/SaturdayDelivery",
        "SaturdayDeliveryIndicator",
    ),
    Rule::Rename(
        "Shipment/Package/PackageServiceOptions/InsuredValue",
        "DeclaredValue",
    ),
    Rule::Rename("Shipment/DocumentsOnly", "DocumentsOnlyIndicator"),
];

const RATE: &[Rule] = &[
    Rule::Drop("Shipment/*/PhoneNumber"),
    Rule::Drop("Shipment/*/TaxIdentificationNumber"),
    Rule::Drop("Shipment/Description"),
    Rule::Rename("Shipment/ShipmentWeight", "ShipmentTotalWeight"),
    Rule::Move(
        "Shipment/PaymentInformation/Prepaid/BillShipper",
        "Shipment/PaymentDetails/ShipmentCharge/BillShipper",
    ),
    Rule::SetIf(
        "Shipment/PaymentDetails/ShipmentCharge/BillShipper",
        "Shipment/PaymentDetails/ShipmentCharge/Type",
        "01",
    ),
    Rule::Drop("Shipment/PaymentInformation"),
];

const SHIP: &[Rule] = &[
    Rule::Default("Request/RequestOption", "nonvalidate"),
    // Rate-only members some clients (shipping-ups) also put in ShipConfirm.
    Rule::Drop("PickupType"),
    Rule::Drop("CustomerClassification"),
    Rule::Wrap("Shipment/*/PhoneNumber", "Phone", "Number"),
    Rule::Move(
        "Shipment/SoldTo",
        "Shipment/ShipmentServiceOptions/InternationalForms/Contacts/SoldTo",
    ),
    // Old payment shapes → ShipmentCharge[{Type "01", …}].
    Rule::Move(
        "Shipment/PaymentInformation/Prepaid/BillShipper",
        "Shipment/PaymentInformation/ShipmentCharge/BillShipper",
    ),
    Rule::Move(
        "Shipment/PaymentInformation/BillThirdParty/BillThirdPartyShipper",
        "Shipment/PaymentInformation/ShipmentCharge/BillThirdParty",
    ),
    Rule::Move(
        "Shipment/PaymentInformation/BillThirdParty/BillThirdPartyConsignee",
        "Shipment/PaymentInformation/ShipmentCharge/BillThirdParty",
    ),
    Rule::Move(
        "Shipment/PaymentInformation/FreightCollect/BillReceiver",
        "Shipment/PaymentInformation/ShipmentCharge/BillReceiver",
    ),
    Rule::SetIf(
        "Shipment/PaymentInformation/ConsigneeBilled",
        "Shipment/PaymentInformation/ShipmentCharge/ConsigneeBilledIndicator",
        "",
    ),
    Rule::SetIf(
        "Shipment/PaymentInformation/ShipmentCharge",
        "Shipment/PaymentInformation/ShipmentCharge/Type",
        "01",
    ),
    Rule::Drop("Shipment/PaymentInformation/Prepaid"),
    Rule::Drop("Shipment/PaymentInformation/BillThirdParty"),
    Rule::Drop("Shipment/PaymentInformation/FreightCollect"),
    Rule::Drop("Shipment/PaymentInformation/ConsigneeBilled"),
    Rule::Fill(
        "Shipment/ItemizedPaymentInformation/ShipmentCharge",
        "Shipment/PaymentInformation/ShipmentCharge",
    ),
    Rule::Drop("Shipment/ItemizedPaymentInformation"),
    Rule::Rename(
        "Shipment/ShipmentServiceOptions/Notification/EMailMessage",
        "EMail",
    ),
    Rule::Rename("Shipment/Package/PackagingType", "Packaging"),
    Rule::Rename(
        "Shipment/Package/AdditionalHandling",
        "AdditionalHandlingIndicator",
    ),
    // Labels: the old print method is REST's image format; REST requires a stock size.
    Rule::Fill(
        "LabelSpecification/LabelPrintMethod",
        "LabelSpecification/LabelImageFormat",
    ),
    Rule::Default("LabelSpecification/LabelStockSize/Height", "6"),
    Rule::Default("LabelSpecification/LabelStockSize/Width", "4"),
];

/// A confirmed REST `ShipmentRequest` → the REST `RateRequest` that prices it.
const SHIP_TO_RATE: &[Rule] = &[
    Rule::Drop("Request/RequestOption"),
    Rule::Drop("LabelSpecification"),
    Rule::Drop("ReceiptSpecification"),
    Rule::Rename("Shipment/Package/Packaging", "PackagingType"),
    Rule::Drop("Shipment/Package/ReferenceNumber"),
    Rule::Move("Shipment/PaymentInformation", "Shipment/PaymentDetails"),
    Rule::Drop("Shipment/*/Phone"),
    Rule::Drop("Shipment/*/TaxIdentificationNumber"),
    Rule::Drop("Shipment/Description"),
    Rule::Drop("Shipment/ReferenceNumber"),
    Rule::Drop("Shipment/ShipmentServiceOptions/Notification"),
    Rule::Drop("Shipment/ShipmentServiceOptions/InternationalForms"),
];

const VOID: &[Rule] = &[
    Rule::Move("ExpandedVoidShipment", "VoidShipment"),
    Rule::Move(
        "ShipmentIdentificationNumber",
        "VoidShipment/ShipmentIdentificationNumber",
    ),
];

const TRACK: &[Rule] = &[Rule::Rename(
    "ShipmentIdentificationNumber",
    "InquiryNumber",
)];

const TNT: &[Rule] = &[
    Rule::Move(
        "TransitFrom/AddressArtifactFormat/CountryCode",
        "ShipFrom/Address/CountryCode",
    ),
    Rule::Move(
        "TransitFrom/AddressArtifactFormat/PoliticalDivision1",
        "ShipFrom/Address/StateProvinceCode",
    ),
    Rule::Move(
        "TransitFrom/AddressArtifactFormat/PoliticalDivision2",
        "ShipFrom/Address/City",
    ),
    Rule::Move(
        "TransitFrom/AddressArtifactFormat/PoliticalDivision3",
        "ShipFrom/Address/Town",
    ),
    Rule::Move(
        "TransitFrom/AddressArtifactFormat/PostcodePrimaryLow",
        "ShipFrom/Address/PostalCode",
    ),
    Rule::Move(
        "TransitTo/AddressArtifactFormat/CountryCode",
        "ShipTo/Address/CountryCode",
    ),
    Rule::Move(
        "TransitTo/AddressArtifactFormat/PoliticalDivision1",
        "ShipTo/Address/StateProvinceCode",
    ),
    Rule::Move(
        "TransitTo/AddressArtifactFormat/PoliticalDivision2",
        "ShipTo/Address/City",
    ),
    Rule::Move(
        "TransitTo/AddressArtifactFormat/PoliticalDivision3",
        "ShipTo/Address/Town",
    ),
    Rule::Move(
        "TransitTo/AddressArtifactFormat/PostcodePrimaryLow",
        "ShipTo/Address/PostalCode",
    ),
    Rule::Move(
        "TransitTo/AddressArtifactFormat/ResidentialAddressIndicator",
        "ShipTo/Address/ResidentialAddressIndicator",
    ),
    Rule::Move("PickupDate", "Pickup/Date"),
    Rule::Drop("TransitFrom"),
    Rule::Drop("TransitTo"),
];

const AV: &[Rule] = &[
    Rule::Drop("Request/RequestOption"),
    Rule::Move("Address/City", "AddressKeyFormat/PoliticalDivision2"),
    Rule::Move(
        "Address/StateProvinceCode",
        "AddressKeyFormat/PoliticalDivision1",
    ),
    Rule::Move("Address/PostalCode", "AddressKeyFormat/PostcodePrimaryLow"),
    Rule::Move("Address/CountryCode", "AddressKeyFormat/CountryCode"),
    Rule::Default("AddressKeyFormat/CountryCode", "US"),
    Rule::Drop("Address"),
];

// ---- answer templates (paths relative to the REST answer's wrapper) ---------------------------

const CHARGES: [Field; 3] = [
    f("TransportationCharges", Src::Copy("TransportationCharges")),
    f("ServiceOptionsCharges", Src::Copy("ServiceOptionsCharges")),
    f("TotalCharges", Src::Copy("TotalCharges")),
];

const RATED_PACKAGE: &[Field] = &[
    CHARGES[0],
    CHARGES[1],
    CHARGES[2],
    f("Weight", Src::Copy("Weight")),
    f("BillingWeight", Src::Copy("BillingWeight")),
];

const RATED_SHIPMENT: &[Field] = &[
    f(
        "Service",
        Src::Nested(&[f("Code", Src::Copy("Service/Code"))]),
    ),
    f(
        "RatedShipmentWarning",
        Src::EachText("RatedShipmentAlert", "Description"),
    ),
    f("BillingWeight", Src::Copy("BillingWeight")),
    CHARGES[0],
    CHARGES[1],
    CHARGES[2],
    f(
        "GuaranteedDaysToDelivery",
        Src::TextOrEmpty("GuaranteedDelivery/BusinessDaysInTransit"),
    ),
    f(
        "ScheduledDeliveryTime",
        Src::TextOrEmpty("GuaranteedDelivery/DeliveryByTime"),
    ),
    f("RatedPackage", Src::Each("RatedPackage", RATED_PACKAGE)),
    f(
        "NegotiatedRates",
        Src::Nested(&[f(
            "NetSummaryCharges",
            Src::Nested(&[f(
                "GrandTotal",
                Src::Copy("NegotiatedRateCharges/TotalCharge"),
            )]),
        )]),
    ),
];

const RATE_ANSWER: &[Field] = &[f(
    "RatedShipment",
    Src::Each("RatedShipment", RATED_SHIPMENT),
)];

const CONFIRM_ANSWER: &[Field] = &[
    f(
        "ShipmentCharges",
        Src::Nested(&[
            f(
                "TransportationCharges",
                Src::Copy("RatedShipment/TransportationCharges"),
            ),
            f(
                "ServiceOptionsCharges",
                Src::Copy("RatedShipment/ServiceOptionsCharges"),
            ),
            f("TotalCharges", Src::Copy("RatedShipment/TotalCharges")),
        ]),
    ),
    f("BillingWeight", Src::Copy("RatedShipment/BillingWeight")),
    // Not known before the one real ship call (legacy-dialects §4.2.3 option a).
    f("ShipmentIdentificationNumber", Src::Const("")),
    // Filled with the stored digest.
    f("ShipmentDigest", Src::Const("")),
    f(
        "NegotiatedRates",
        Src::Nested(&[f(
            "NetSummaryCharges",
            Src::Nested(&[f(
                "GrandTotal",
                Src::Copy("RatedShipment/NegotiatedRateCharges/TotalCharge"),
            )]),
        )]),
    ),
];

const LABEL_IMAGE: &[Field] = &[
    f(
        "LabelImageFormat",
        Src::Nested(&[f("Code", Src::Copy("ShippingLabel/ImageFormat/Code"))]),
    ),
    f("GraphicImage", Src::Copy("ShippingLabel/GraphicImage")),
    f("HTMLImage", Src::Copy("ShippingLabel/HTMLImage")),
];

const PACKAGE_RESULTS: &[Field] = &[
    f("TrackingNumber", Src::Copy("TrackingNumber")),
    f("ServiceOptionsCharges", Src::Copy("ServiceOptionsCharges")),
    f("LabelImage", Src::Nested(LABEL_IMAGE)),
];

const ACCEPT_ANSWER: &[Field] = &[f(
    "ShipmentResults",
    Src::Nested(&[
        f(
            "ShipmentCharges",
            Src::Copy("ShipmentResults/ShipmentCharges"),
        ),
        f(
            "NegotiatedRates",
            Src::Nested(&[f(
                "NetSummaryCharges",
                Src::Nested(&[f(
                    "GrandTotal",
                    Src::Copy("ShipmentResults/NegotiatedRateCharges/TotalCharge"),
                )]),
            )]),
        ),
        f("BillingWeight", Src::Copy("ShipmentResults/BillingWeight")),
        f(
            "ShipmentIdentificationNumber",
            Src::Copy("ShipmentResults/ShipmentIdentificationNumber"),
        ),
        f(
            "PackageResults",
            Src::Each("ShipmentResults/PackageResults", PACKAGE_RESULTS),
        ),
        f("Form", Src::Copy("ShipmentResults/Form")),
        f("CODTurnInPage", Src::Copy("ShipmentResults/CODTurnInPage")),
        f(
            "HighValueReport",
            Src::Copy("ShipmentResults/HighValueReport"),
        ),
        f(
            "ControlLogReceipt",
            Src::Copy("ShipmentResults/ControlLogReceipt"),
        ),
    ]),
)];

const STATUS_CODE: &[Field] = &[
    f("Code", Src::Copy("SummaryResult/Status/Code")),
    f("Description", Src::Copy("SummaryResult/Status/Description")),
];

const VOID_ANSWER: &[Field] = &[
    f(
        "Status",
        Src::Nested(&[
            f("StatusType", Src::Nested(STATUS_CODE)),
            f("StatusCode", Src::Nested(STATUS_CODE)),
        ]),
    ),
    f(
        "PackageLevelResults",
        Src::Each(
            "PackageLevelResults",
            &[
                f("TrackingNumber", Src::Copy("TrackingNumber")),
                f(
                    "StatusCode",
                    Src::Nested(&[
                        f("Code", Src::Copy("Status/Code")),
                        f("Description", Src::Copy("Status/Description")),
                    ]),
                ),
            ],
        ),
    ),
];

const XAV_ANSWER: &[Field] = &[
    f("ValidAddressIndicator", Src::Copy("ValidAddressIndicator")),
    f(
        "AmbiguousAddressIndicator",
        Src::Copy("AmbiguousAddressIndicator"),
    ),
    f("NoCandidatesIndicator", Src::Copy("NoCandidatesIndicator")),
    f("AddressClassification", Src::Copy("AddressClassification")),
    f(
        "AddressKeyFormat",
        Src::Each(
            "Candidate",
            &[
                f("AddressClassification", Src::Copy("AddressClassification")),
                f("", Src::Spread("AddressKeyFormat")),
            ],
        ),
    ),
];

const AV_ANSWER: &[Field] = &[f(
    "AddressValidationResult",
    Src::Each(
        "Candidate",
        &[
            f("Rank", Src::Const("")),
            f("Quality", Src::Const("")),
            f(
                "Address",
                Src::Nested(&[
                    f("City", Src::Copy("AddressKeyFormat/PoliticalDivision2")),
                    f(
                        "StateProvinceCode",
                        Src::Copy("AddressKeyFormat/PoliticalDivision1"),
                    ),
                ]),
            ),
            f(
                "PostalCodeLowEnd",
                Src::Copy("AddressKeyFormat/PostcodePrimaryLow"),
            ),
            f(
                "PostalCodeHighEnd",
                Src::Copy("AddressKeyFormat/PostcodePrimaryLow"),
            ),
        ],
    ),
)];

// ---- the dialect ------------------------------------------------------------------------------

/// The old-XML dialect.
pub struct OldXml;

impl Dialect for OldXml {
    fn name(&self) -> &'static str {
        "xml"
    }

    fn detect(&self, path: &str, lower: &str, _headers: super::Fields<'_>) -> Option<String> {
        super::service_after(&["/ups.app/xml/"], path, lower)
    }

    fn parse(&self, route: &Route, _head: &Head<'_>, body: &[u8]) -> Result<Parsed, Failure> {
        parse(route, body)
    }

    fn refusal(&self, route: &Route, failure: &Failure) -> Answer {
        let root = OldService::from_path(&route.service)
            .map(|s| s.response_root().to_string())
            .unwrap_or_else(|| unknown_root(&route.service));
        error_document(&root, None, &[failure.ups_error()], Some(failure.kind()))
    }
}

/// What an old-XML answer is rooted in and echoes: the service called, the XOLTWS shape its
/// REST answer is read through (`CustomerContext`, Track's activity option) and `XpciVersion`.
#[derive(Debug, Clone)]
pub struct OldShape {
    pub old: OldService,
    pub shape: AnswerShape,
    pub xpci_version: Option<String>,
}

/// An old-XML request understood, with its step of the exchange.
struct OldXmlRequest {
    shape: OldShape,
    step: Step,
}

enum Step {
    /// One REST call.
    Call { call: RestCall, body: Option<Bytes> },
    /// ShipConfirm: price the shipment with `rate` (nothing is created at UPS); on success
    /// prepare `ship` under a digest and answer the price with it.
    Confirm {
        rate: RestCall,
        rate_body: Bytes,
        ship: RestCall,
        ship_body: Bytes,
    },
    /// ShipAccept: make the digest's prepared ship call; a repeated accept gets the first
    /// accept's answer.
    Accept { digest: String },
}

#[async_trait::async_trait]
impl Answered for OldXmlRequest {
    fn service(&self) -> &'static str {
        match self.step {
            Step::Call { .. } => self.shape.shape.service.name(),
            Step::Confirm { .. } => "ship_confirm",
            Step::Accept { .. } => "ship_accept",
        }
    }

    async fn exchange(&mut self, ups: &mut dyn Ups) -> Result<Answer, Failure> {
        let (rest, digest) = match &mut self.step {
            Step::Call { call, body } => (ups.call(call, body.take()).await?, None),
            Step::Confirm {
                rate,
                rate_body,
                ship,
                ship_body,
            } => {
                let rest = ups.call(rate, Some(rate_body.clone())).await?;
                let digest = if (200..300).contains(&rest.status) {
                    Some(ups.prepare(ship.clone(), ship_body.clone()).await?)
                } else {
                    None
                };
                (rest, digest)
            }
            Step::Accept { digest } => (ups.make_prepared(digest).await?, None),
        };
        Ok(answer(
            &self.shape,
            rest.status,
            rest.body,
            digest.as_deref(),
        ))
    }

    fn refusal(&self, failure: &Failure) -> Answer {
        error_document(
            self.shape.old.response_root(),
            Some(&self.shape),
            &[failure.ups_error()],
            Some(failure.kind()),
        )
    }
}

/// `<Svc>Response` for a service we do not translate (when the name is usable).
fn unknown_root(segment: &str) -> String {
    if !segment.is_empty() && segment.chars().all(|c| c.is_ascii_alphanumeric()) {
        format!("{segment}Response")
    } else {
        "Response".to_string()
    }
}

/// Take an old-XML body apart: the `AccessRequest` document, then the request document.
pub fn parse(route: &Route, body: &[u8]) -> Result<Parsed, Failure> {
    parse_with(route, body, true)
}

/// [`parse`] by the element tree alone, which takes every request and words every error:
/// the reference the one-pass path is tested against.
#[doc(hidden)]
pub fn parse_by_tree(route: &Route, body: &[u8]) -> Result<Parsed, Failure> {
    parse_with(route, body, false)
}

fn parse_with(route: &Route, body: &[u8], one_pass: bool) -> Result<Parsed, Failure> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Failure::Empty);
    }
    let (text, last_xmlns) = xmljson::decode_within_limits(body)?;
    let declarations = onepass::Declarations::with_last(&text, last_xmlns);
    let in_one_pass = one_pass
        .then(|| access_request_in_one_pass(&text, &declarations))
        .flatten();
    let (credentials, end, reader) = match in_one_pass {
        Some((credentials, end, reader)) => (credentials, end, Some(reader)),
        None => {
            let (first, end) = xmljson::parse_document(&text)?;
            if first.name != "AccessRequest" {
                // No AccessRequest: refused as missing credentials (250003).
                return Ok(Parsed {
                    credentials: LegacyCredentials::none(),
                    request: understood(route, first),
                });
            }
            if let Some(name) = first.repeated_child() {
                return Err(Failure::Malformed(format!(
                    "AccessRequest has `{name}` twice"
                )));
            }
            let t = |p: &str| first.text_at(p).unwrap_or("").to_string();
            let credentials =
                LegacyCredentials::new(t("AccessLicenseNumber"), t("UserId"), t("Password"));
            (credentials, end, None)
        }
    };
    let rest = text.get(end..).unwrap_or("");
    let request = if rest.trim().is_empty() {
        Err(Failure::MissingField(
            "the service request document after AccessRequest",
        ))
    } else if let Some(request) = one_pass
        .then(|| request_read_in_one_pass(route, rest, &declarations, reader))
        .flatten()
    {
        request
    } else {
        xmljson::parse_document(rest).and_then(|(r, _)| understood(route, r))
    };
    Ok(Parsed {
        credentials,
        request,
    })
}

/// The `AccessRequest` document in front of the request, read as its events come (a tree of
/// it cost more than the rest of the credentials' path): the credentials, where the
/// document ends in `text`, and the reader, there. `None` where the tree path reads it (it is
/// not first, it is empty) or words an error (an element twice, a limit, text outside it).
fn access_request_in_one_pass<'x>(
    text: &'x str,
    declarations: &onepass::Declarations<'_>,
) -> Option<(LegacyCredentials, usize, onepass::PlainReader<'x>)> {
    let skipped = text.len() - text.trim_start().len();
    let doc = &text[skipped..];
    let mut reader = plain_reader(doc, declarations)?;
    let start = onepass::root_start(doc, &mut reader)?;
    if start.local_name().as_ref() != b"AccessRequest" {
        return None;
    }
    let mut count = 0;
    xmljson::counted(0, &mut count).ok()?;
    let [key, user, password] =
        onepass::credential_block(doc, &mut reader, "AccessRequest", 0, &mut count)?;
    let end = skipped + reader.buffer_position() as usize;
    Some((LegacyCredentials::new(key, user, password), end, reader))
}

/// A reader of `doc` that resolves no namespace, for a body that declares none. One that
/// does goes to the tree path, whose reader checks the declarations.
fn plain_reader<'x>(
    doc: &'x str,
    declarations: &onepass::Declarations<'_>,
) -> Option<onepass::PlainReader<'x>> {
    (!declarations.in_part(doc.as_bytes())).then(|| onepass::plain_reader(doc.as_bytes()))
}

/// Whether one pass reads the whole of `body`: its `AccessRequest`, and the request after it
/// by the same reader (for the differential tests, which see only what both paths make of
/// it).
#[doc(hidden)]
pub fn reads_in_one_pass(route: &Route, body: &[u8]) -> bool {
    let Ok((text, last_xmlns)) = xmljson::decode_within_limits(body) else {
        return false;
    };
    let declarations = onepass::Declarations::with_last(&text, last_xmlns);
    let Some((_, end, reader)) = access_request_in_one_pass(&text, &declarations) else {
        return false;
    };
    let rest = text.get(end..).unwrap_or("");
    request_read_in_one_pass(route, rest, &declarations, Some(reader)).is_some()
}

/// Where old XML's `XpciVersion` is: echoed in the answer, never sent to UPS.
const XPCI_VERSION: &str = "Request/TransactionReference/XpciVersion";

/// The request document read in one pass (see [`onepass`]), for the services whose REST
/// call reads only the `Request` member (rates); `None` sends the caller down the tree path.
#[doc(hidden)]
pub fn request_in_one_pass(route: &Route, text: &str) -> Option<Result<Request, Failure>> {
    request_read_in_one_pass(route, text, &onepass::Declarations::of(text), None)
}

/// [`request_in_one_pass`], where the body's namespace declarations are (`text` is a part of
/// the body), by the reader that read the `AccessRequest` before `text` if there is one: it
/// goes on with the buffers that document grew (a new reader grows its own, six allocations).
fn request_read_in_one_pass<'x>(
    route: &Route,
    text: &'x str,
    declarations: &onepass::Declarations<'_>,
    reader: Option<onepass::PlainReader<'x>>,
) -> Option<Result<Request, Failure>> {
    let svc = OldService::from_path(&route.service)?;
    let (service, root) = svc.xoltws();
    let rules = svc.one_pass_rules()?;
    // Confirm and accept are exchanges of their own; an AV request may turn out to be XAV.
    if matches!(
        svc,
        OldService::ShipConfirm | OldService::ShipAccept | OldService::Av
    ) || !services::reads_request_member_only(service)
        || !rules.takes
    {
        return None;
    }
    let (doc, mut reader) = match reader {
        Some(reader) => (text, reader),
        None => {
            let doc = text.trim_start();
            (doc, plain_reader(doc, declarations)?)
        }
    };
    let start = onepass::root_start(doc, &mut reader)?;
    if start.local_name().as_ref() != svc.request_root().as_bytes() || xmljson::is_nil(&start) {
        return None;
    }
    let mut count = 0;
    xmljson::counted(0, &mut count).ok()?;
    let plan = onepass::Plan {
        wrapper: root,
        arrays: schema::arrays(root).unwrap_or_else(schema::no_arrays),
        rules,
        captures: &[XPCI_VERSION],
    };
    let written = onepass::write_request(doc, &mut reader, 0, &mut count, &plan)?;
    let rest = services::to_rest_of_member(service, &written.request_member()?)?;
    let onepass::Written { body, captured, .. } = written;
    let xpci_version = captured.into_iter().next().flatten();
    Some(rest.map(|(call, shape)| {
        let body = super::rest_body_of(&call, || Bytes::from(body));
        let shape = OldShape {
            old: svc,
            shape,
            xpci_version,
        };
        let step = Step::Call { call, body };
        Request::Answered(Box::new(OldXmlRequest { shape, step }) as Box<dyn Answered>)
    }))
}

/// The request document (content of its root) as JSON, rewritten by a service's tables.
pub fn request_json(svc: OldService, req: Element) -> Value {
    let mut v = match xmljson::to_json(req) {
        Some(v @ Value::Object(_)) => v,
        _ => Value::Object(Map::new()),
    };
    for table in svc.rules() {
        schema::apply(table, &mut v);
    }
    xmljson::prune_empty(&mut v);
    if svc == OldService::ShipConfirm {
        label_stock_portrait(&mut v);
    }
    v
}

/// ClassicUPS3 sends the 4×6 stock as Height 4, Width 6; REST's is Height 6, Width 4.
fn label_stock_portrait(v: &mut Value) {
    if let Some(Value::Object(size)) = v.pointer_mut("/LabelSpecification/LabelStockSize") {
        let h = size.get("Height").and_then(Value::as_str).map(str::trim);
        let w = size.get("Width").and_then(Value::as_str).map(str::trim);
        if h == Some("4") && w == Some("6") {
            size.insert("Height".into(), json!("6"));
            size.insert("Width".into(), json!("4"));
        }
    }
}

fn understood(route: &Route, req: Element) -> Result<Request, Failure> {
    let mut svc = OldService::from_path(&route.service)
        .ok_or_else(|| Failure::UnknownService(route.service.clone()))?;
    if svc == OldService::Av && req.child("AddressKeyFormat").is_some() {
        svc = OldService::Xav;
    }
    if req.name != svc.request_root() {
        return Err(Failure::UnknownService(format!(
            "<{}> sent to /ups.app/xml/{}",
            req.name, route.service
        )));
    }
    let xpci_version = req.text_at(XPCI_VERSION).map(str::to_string);
    let customer_context = req
        .text_at("Request/TransactionReference/CustomerContext")
        .map(str::to_string);
    // Read before the tree moves into JSON; only an accept carries one.
    let digest = (svc == OldService::ShipAccept)
        .then(|| req.text_at("ShipmentDigest").map(str::to_string))
        .flatten();
    let mut v = request_json(svc, req);
    let (service, root) = svc.xoltws();
    let (shape, step) = match svc {
        OldService::ShipAccept => {
            let digest = digest.ok_or(Failure::MissingField(
                "ShipmentAcceptRequest/ShipmentDigest",
            ))?;
            let shape = AnswerShape {
                service,
                customer_context,
                all_activity: false,
            };
            (shape, Step::Accept { digest })
        }
        OldService::ShipConfirm => {
            xmljson::normalize_arrays(
                &mut v,
                schema::arrays("ShipmentRequest").unwrap_or_else(schema::no_arrays),
            );
            let mut rate = v.clone();
            schema::apply(SHIP_TO_RATE, &mut rate);
            xmljson::normalize_arrays(
                &mut rate,
                schema::arrays("RateRequest").unwrap_or_else(schema::no_arrays),
            );
            let (rate_call, shape) = services::to_rest(Service::Rate, &rate)?;
            let ship = RestCall {
                method: http::Method::POST,
                path_and_query: format!("/api/shipments/{}/ship", crate::rest::SHIPPING),
                body: RestBody::None,
                headers: vec![],
            };
            let step = Step::Confirm {
                rate: rate_call,
                rate_body: Bytes::from(json!({ "RateRequest": rate }).to_string()),
                ship,
                ship_body: Bytes::from(json!({ "ShipmentRequest": v }).to_string()),
            };
            (shape, step)
        }
        _ => {
            xmljson::normalize_arrays(
                &mut v,
                schema::arrays(root).unwrap_or_else(schema::no_arrays),
            );
            let (call, shape) = services::to_rest(service, &v)?;
            let body = super::rest_body_of(&call, || super::rest_body(root, &v));
            (shape, Step::Call { call, body })
        }
    };
    let shape = OldShape {
        old: svc,
        shape,
        xpci_version,
    };
    Ok(Request::Answered(Box::new(OldXmlRequest { shape, step })))
}

// ---- answers ----------------------------------------------------------------------------------

/// `Response`: echoed reference, status 1/0, errors (or warnings).
fn response_block(shape: Option<&OldShape>, ok: bool, errors: &[UpsError]) -> Value {
    let mut r = Map::new();
    let mut reference = Map::new();
    if let Some(s) = shape {
        if let Some(c) = &s.shape.customer_context {
            reference.insert("CustomerContext".into(), json!(c));
        }
        if let Some(x) = &s.xpci_version {
            reference.insert("XpciVersion".into(), json!(x));
        }
    }
    if !reference.is_empty() {
        r.insert("TransactionReference".into(), Value::Object(reference));
    }
    r.insert(
        "ResponseStatusCode".into(),
        json!(if ok { "1" } else { "0" }),
    );
    r.insert(
        "ResponseStatusDescription".into(),
        json!(if ok { "Success" } else { "Failure" }),
    );
    let list: Vec<Value> = errors
        .iter()
        .map(|e| {
            json!({"ErrorSeverity": e.severity.as_str(), "ErrorCode": e.code, "ErrorDescription": e.description})
        })
        .collect();
    if !list.is_empty() {
        r.insert("Error".into(), Value::Array(list));
    }
    Value::Object(r)
}

/// [`response_block`] of a success without warnings, written without building it.
fn write_success_block(out: &mut String, shape: &OldShape) {
    xmljson::open_element(out, "Response");
    let context = shape.shape.customer_context.as_deref();
    let xpci = shape.xpci_version.as_deref();
    if context.is_some() || xpci.is_some() {
        xmljson::open_element(out, "TransactionReference");
        if let Some(c) = context {
            xmljson::write_text(out, "CustomerContext", c);
        }
        if let Some(x) = xpci {
            xmljson::write_text(out, "XpciVersion", x);
        }
        xmljson::close_element(out, "TransactionReference");
    }
    xmljson::write_text(out, "ResponseStatusCode", "1");
    xmljson::write_text(out, "ResponseStatusDescription", "Success");
    xmljson::close_element(out, "Response");
}

const XML_DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";

fn document(root: &str, members: Map<String, Value>) -> Bytes {
    let mut out = String::with_capacity(1024);
    out.push_str(XML_DECLARATION);
    xmljson::write_json(&mut out, None, root, &Value::Object(members));
    Bytes::from(out)
}

/// The old error document: the service's response root, `ResponseStatusCode` 0, HTTP 200.
pub fn error_document(
    root: &str,
    shape: Option<&OldShape>,
    errors: &[UpsError],
    error_kind: Option<&'static str>,
) -> Answer {
    let mut m = Map::new();
    m.insert("Response".into(), response_block(shape, false, errors));
    Answer {
        status: 200,
        content_type: CONTENT_TYPE,
        body: document(root, m),
        error_kind,
        dropped_fields: 0,
    }
}

/// REST `Response/Alert` → old `Error` warnings.
fn warnings(rest: &Value) -> Vec<UpsError> {
    schema::get(rest, "Response")
        .map(|r| {
            let mut out = vec![];
            for a in services::as_list(r.get("Alert")) {
                out.push(UpsError::new(
                    &json_text(a.get("Code")),
                    json_text(a.get("Description")),
                    Severity::Warning,
                ));
            }
            out
        })
        .unwrap_or_default()
}

/// UPS's REST answer → the old response document (`digest`: ShipConfirm's, once prepared).
pub fn answer(shape: &OldShape, status: u16, body: Bytes, digest: Option<&str>) -> Answer {
    let svc = shape.old;
    let root = svc.response_root();
    let success = (200..300).contains(&status);
    // A rate (the common call) is written while UPS's bytes are read; where that could
    // differ, it and a confirmation are built from a borrowed parse of UPS's bytes: no
    // `Value` with a hashed map per object (half of a rate's answer cost).
    if success && svc == OldService::Rate {
        if let Some(answer) = rate_streamed(shape, &body) {
            return answer;
        }
    }
    if success && matches!(svc, OldService::Rate | OldService::ShipConfirm) {
        return tree::with_arena(|arena| {
            let parsed = tree::parse_in(arena, &body).unwrap_or(tree::Json::Null);
            templated(shape, status, &parsed, digest)
        });
    }
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if !success {
        return error_document(root, Some(shape), &rest_errors(&parsed, status), None);
    }
    let Some(rest) = parsed.get(svc.rest_root()) else {
        return garbled(shape, status);
    };
    let (members, warn) = match svc {
        // Answered above from the borrowed parse; the same template reads a `Value` too.
        OldService::Rate | OldService::ShipConfirm => {
            return templated(shape, status, &parsed, digest)
        }
        OldService::ShipAccept => (schema::build(ACCEPT_ANSWER, rest), warnings(rest)),
        OldService::Void => (schema::build(VOID_ANSWER, rest), warnings(rest)),
        OldService::Xav => (schema::build(XAV_ANSWER, rest), warnings(rest)),
        OldService::Av => {
            let mut m = schema::build(AV_ANSWER, rest);
            let quality = if rest.get("ValidAddressIndicator").is_some() {
                "1.0"
            } else {
                "0.9"
            };
            if let Some(Value::Array(results)) = m.get_mut("AddressValidationResult") {
                for (i, r) in results.iter_mut().enumerate() {
                    r["Rank"] = json!((i + 1).to_string());
                    r["Quality"] = json!(quality);
                }
            }
            (m, warnings(rest))
        }
        OldService::TimeInTransit => (tnt_answer(&shape.shape, &parsed), vec![]),
        OldService::Track => match track_answer(&shape.shape, &parsed) {
            Ok(m) => (m, vec![]),
            Err(e) => return error_document(root, Some(shape), &e, None),
        },
    };
    success_document(shape, members, &warn)
}

/// A rate's or a confirmation's answer: their templates read any [`Node`].
fn templated<T: Node>(shape: &OldShape, status: u16, parsed: &T, digest: Option<&str>) -> Answer {
    let svc = shape.old;
    let Some(rest) = parsed.field(svc.rest_root()) else {
        return garbled(shape, status);
    };
    // A rate is written straight from UPS's members; the map below is built only where
    // that would differ (see `schema::write_fields`).
    if svc == OldService::Rate {
        if let Some(answer) = rate_written(shape, rest) {
            return answer;
        }
    }
    templated_by_map(shape, rest, digest)
}

/// [`answer`] with a rate's members always built as a map first: the reference the direct
/// writer is tested against.
#[doc(hidden)]
pub fn answer_by_map(shape: &OldShape, status: u16, body: Bytes, digest: Option<&str>) -> Answer {
    if !(200..300).contains(&status) || shape.old != OldService::Rate {
        return answer(shape, status, body, digest);
    }
    tree::with_arena(|arena| {
        let parsed = tree::parse_in(arena, &body).unwrap_or(tree::Json::Null);
        match parsed.field(shape.old.rest_root()) {
            Some(rest) => templated_by_map(shape, rest, digest),
            None => garbled(shape, status),
        }
    })
}

/// A rate's success document written straight from the REST `RateResponse`'s members.
fn rate_written<T: Node>(shape: &OldShape, rest: &T) -> Option<Answer> {
    rate_document(shape, |out| schema::write_fields(out, RATE_ANSWER, rest))
}

/// A rate's success document written while UPS's answer `body` is read: no tree.
fn rate_streamed(shape: &OldShape, body: &[u8]) -> Option<Answer> {
    static PLAN: LazyLock<Option<stream::Plan>> =
        LazyLock::new(|| stream::Plan::compile(RATE_ANSWER));
    let plan = PLAN.as_ref()?;
    let text = std::str::from_utf8(body).ok()?;
    let root = OldService::Rate.rest_root();
    rate_document(shape, |out| stream::write(out, plan, root, text))
}

/// A rate's success document, its members written by `members`.
fn rate_document(
    shape: &OldShape,
    members: impl FnOnce(&mut String) -> Option<()>,
) -> Option<Answer> {
    let root = shape.old.response_root();
    let mut out = String::with_capacity(2048);
    out.push_str(XML_DECLARATION);
    xmljson::open_element(&mut out, root);
    write_success_block(&mut out, shape);
    members(&mut out)?;
    xmljson::close_element(&mut out, root);
    Some(Answer {
        status: 200,
        content_type: CONTENT_TYPE,
        body: Bytes::from(out),
        error_kind: None,
        dropped_fields: 0,
    })
}

/// The template's members built as a map, then written.
fn templated_by_map<T: Node>(shape: &OldShape, rest: &T, digest: Option<&str>) -> Answer {
    let svc = shape.old;
    let members = if svc == OldService::ShipConfirm {
        let Some(digest) = digest else {
            return refused(
                shape,
                Failure::unreadable("ShipConfirm digest", "none was stored"),
            );
        };
        let mut m = schema::build(CONFIRM_ANSWER, rest);
        m.insert("ShipmentDigest".into(), json!(digest));
        m
    } else {
        schema::build(RATE_ANSWER, rest)
    };
    success_document(shape, members, &[])
}

/// UPS's success answer without the member the old answer is built from.
fn garbled(shape: &OldShape, status: u16) -> Answer {
    let why = format!("no {} in a {status} answer", shape.old.rest_root());
    refused(shape, Failure::UpstreamGarbled(why))
}

/// Our own failure as the service's old error document.
fn refused(shape: &OldShape, f: Failure) -> Answer {
    error_document(
        shape.old.response_root(),
        Some(shape),
        &[f.ups_error()],
        Some(f.kind()),
    )
}

/// The old success document: the `Response` block (with `warn`ings), then `members`.
fn success_document(shape: &OldShape, members: Map<String, Value>, warn: &[UpsError]) -> Answer {
    let mut all = Map::new();
    all.insert("Response".into(), response_block(Some(shape), true, warn));
    all.extend(members);
    Answer {
        status: 200,
        content_type: CONTENT_TYPE,
        body: document(shape.old.response_root(), all),
        error_kind: None,
        dropped_fields: 0,
    }
}

/// Old-XML `Address` from a XOLTWS one: `AddressLine[]` → `AddressLine1..3`.
fn old_address(a: &Value) -> Value {
    let mut out = Map::new();
    for (i, line) in services::as_list(a.get("AddressLine"))
        .into_iter()
        .take(3)
        .enumerate()
    {
        out.insert(format!("AddressLine{}", i + 1), line.clone());
    }
    for k in ["City", "StateProvinceCode", "PostalCode", "CountryCode"] {
        if let Some(v) = a.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    Value::Object(out)
}

/// The old `TimeInTransitResponse/TransitResponse`, built from the one TimeInTransit
/// converter's XOLTWS answer ([`services::tnt_answer`]) with the old API's names on top:
/// `ShipFrom/Address` → `TransitFrom/AddressArtifactFormat` (`PoliticalDivision2`/`1`,
/// `PostcodePrimaryLow`), `GuaranteedIndicator` → `Guaranteed/Code` `Y`/`N`, `Arrival` and
/// `Pickup` → flat `EstimatedArrival` members, dates and times in the old API's ISO forms.
fn tnt_answer(shape: &AnswerShape, rest: &Value) -> Map<String, Value> {
    let xoltws = services::tnt_answer(shape, rest);
    let t = xoltws
        .pointer("/TimeInTransitResponse/TransitResponse")
        .unwrap_or(&Value::Null);
    let text = |v: &Value, pointer: &str| json_text(v.pointer(pointer));
    let member = |k: &str| t.get(k).cloned().unwrap_or_else(|| json!(""));
    let artifact = |side: &str| {
        let a = |k: &str| text(t, &format!("/{side}/Address/{k}"));
        json!({"AddressArtifactFormat": {
            "PoliticalDivision2": a("City"),
            "PoliticalDivision1": a("StateProvinceCode"),
            "Country": a("Country"),
            "CountryCode": a("CountryCode"),
            "PostcodePrimaryLow": a("PostalCode"),
        }})
    };
    let summaries: Vec<Value> = services::as_list(t.get("ServiceSummary"))
        .into_iter()
        .map(|s| {
            let a = |k: &str| text(s, &format!("/EstimatedArrival/{k}"));
            let guaranteed = if s.get("GuaranteedIndicator").is_some() {
                "Y"
            } else {
                "N"
            };
            json!({
                "Service": s.get("Service").cloned().unwrap_or_else(|| json!("")),
                "Guaranteed": {"Code": guaranteed},
                "EstimatedArrival": {
                    "BusinessTransitDays": a("BusinessDaysInTransit"),
                    "Time": iso_time(&a("Arrival/Time")),
                    "PickupDate": iso_date(&a("Pickup/Date")),
                    "PickupTime": iso_time(&a("Pickup/Time")),
                    "HolidayCount": a("HolidayCount"),
                    "DelayCount": a("DelayCount"),
                    "Date": iso_date(&a("Arrival/Date")),
                    "DayOfWeek": a("DayOfWeek"),
                    "TotalTransitDays": a("TotalTransitDays"),
                    "CustomerCenterCutoff": iso_time(&a("CustomerCenterCutoff")),
                    "RestDays": a("RestDays"),
                },
            })
        })
        .collect();
    let mut transit = json!({
        "PickupDate": iso_date(&text(t, "/PickupDate")),
        "TransitFrom": artifact("ShipFrom"),
        "TransitTo": artifact("ShipTo"),
        "ShipmentWeight": member("ShipmentWeight"),
        "InvoiceLineTotal": member("InvoiceLineTotal"),
        "Disclaimer": member("Disclaimer"),
        "ServiceSummary": summaries,
    });
    // What REST did not say is left out, as the old API did.
    xmljson::prune_empty(&mut transit);
    let mut out = Map::new();
    out.insert("TransitResponse".into(), transit);
    out
}

/// `20260113` → `2026-01-13` (the old API's date form); anything else as it is.
fn iso_date(d: &str) -> String {
    if d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()) {
        format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..])
    } else {
        d.to_string()
    }
}

/// `230000` → `23:00:00`, `2300` → `23:00` (the old API's time form); anything else as it is.
fn iso_time(t: &str) -> String {
    if matches!(t.len(), 4 | 6) && t.bytes().all(|b| b.is_ascii_digit()) {
        let pairs: Vec<&str> = (0..t.len()).step_by(2).map(|i| &t[i..i + 2]).collect();
        pairs.join(":")
    } else {
        t.to_string()
    }
}

/// The old `TrackResponse/Shipment`, built from the one Track converter's XOLTWS answer
/// ([`services::track_answer`]) with the old API's names and structure on top:
/// `ShipmentAddress` by type → `Shipper`/`ShipTo`, `InquiryNumber` →
/// `ShipmentIdentificationNumber`, `DeliveryDetail` → `ScheduledDeliveryDate`/…,
/// `Status/Type` → `Status/StatusType`, `AddressLine[]` → `AddressLine1..3`.
fn track_answer(shape: &AnswerShape, rest: &Value) -> Result<Map<String, Value>, Vec<UpsError>> {
    let xoltws = services::track_answer(shape, rest)?;
    let s = xoltws
        .pointer("/TrackResponse/Shipment")
        .unwrap_or(&Value::Null);
    let get = |k: &str| s.get(k).cloned();
    let mut out = Map::new();
    let address_of = |code: &str| {
        services::as_list(s.get("ShipmentAddress"))
            .into_iter()
            .find(|a| json_text(a.pointer("/Type/Code")) == code)
            .and_then(|a| a.get("Address"))
            .map(old_address)
    };
    let mut shipper = Map::new();
    if let Some(n) = get("ShipperNumber") {
        shipper.insert("ShipperNumber".into(), n);
    }
    if let Some(a) = address_of("01") {
        shipper.insert("Address".into(), a);
    }
    if !shipper.is_empty() {
        out.insert("Shipper".into(), Value::Object(shipper));
    }
    if let Some(a) = address_of("02") {
        out.insert("ShipTo".into(), json!({ "Address": a }));
    }
    for k in ["ShipmentWeight", "Service", "ReferenceNumber"] {
        if let Some(v) = get(k) {
            out.insert(k.into(), v);
        }
    }
    out.insert(
        "ShipmentIdentificationNumber".into(),
        json!(json_text(s.pointer("/InquiryNumber/Value"))),
    );
    if let Some(d) = get("PickupDate") {
        out.insert("PickupDate".into(), d);
    }
    for d in services::as_list(s.get("DeliveryDetail")) {
        let name = match json_text(d.pointer("/Type/Code")).as_str() {
            "03" => "ScheduledDeliveryDate",
            "02" => "RescheduledDeliveryDate",
            _ => continue,
        };
        out.insert(name.into(), json!(json_text(d.get("Date"))));
    }
    let p = s.get("Package").unwrap_or(&Value::Null);
    let mut pkg = Map::new();
    for k in ["TrackingNumber", "DeliveryIndicator"] {
        if let Some(v) = p.get(k) {
            pkg.insert(k.into(), v.clone());
        }
    }
    let activity: Vec<Value> = services::as_list(p.get("Activity"))
        .into_iter()
        .map(|a| {
            let loc = a.get("ActivityLocation").unwrap_or(&Value::Null);
            let mut location = Map::new();
            location.insert(
                "Address".into(),
                old_address(loc.get("Address").unwrap_or(&Value::Null)),
            );
            for k in ["Description", "SignedForByName"] {
                if let Some(v) = loc.get(k) {
                    location.insert(k.into(), v.clone());
                }
            }
            let st = a.get("Status").unwrap_or(&Value::Null);
            let mut one = Map::new();
            one.insert("ActivityLocation".into(), Value::Object(location));
            one.insert(
                "Status".into(),
                json!({
                    "StatusType": {"Code": json_text(st.get("Type")), "Description": json_text(st.get("Description"))},
                    "StatusCode": {"Code": json_text(st.get("Code"))},
                }),
            );
            for k in ["Date", "Time", "GMTDate", "GMTTime", "GMTOffset"] {
                if let Some(v) = a.get(k) {
                    one.insert(k.into(), v.clone());
                }
            }
            Value::Object(one)
        })
        .collect();
    if !activity.is_empty() {
        pkg.insert("Activity".into(), Value::Array(activity));
    }
    for k in ["PackageWeight", "ReferenceNumber"] {
        if let Some(v) = p.get(k) {
            pkg.insert(k.into(), v.clone());
        }
    }
    out.insert("Package".into(), Value::Object(pkg));
    let mut doc = Map::new();
    doc.insert("Shipment".into(), Value::Object(out));
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::{CannedUps, Dialect};

    #[test]
    fn every_service_has_its_rules_compiled_for_one_pass() {
        for path in [
            "rate",
            "track",
            "shipconfirm",
            "shipaccept",
            "void",
            "timeintransit",
            "av",
            "xav",
        ] {
            let svc = OldService::from_path(path).unwrap();
            let rules = svc
                .one_pass_rules()
                .unwrap_or_else(|| panic!("{path}: not compiled"));
            assert_eq!(rules.takes, onepass::takes(svc.rules()), "{path}");
        }
        // A ShipConfirm default is what one pass cannot apply.
        assert!(!OldService::ShipConfirm.one_pass_rules().unwrap().takes);
    }

    #[test]
    fn every_answer_table_names_distinct_members() {
        for table in [
            RATE_ANSWER,
            CONFIRM_ANSWER,
            ACCEPT_ANSWER,
            VOID_ANSWER,
            XAV_ANSWER,
            AV_ANSWER,
        ] {
            assert!(schema::names_are_distinct(table), "{:?}", table[0].name);
        }
        // The check sees a name given twice, at any depth.
        const INNER: &[Field] = &[f("A", Src::Copy("a")), f("A", Src::Copy("b"))];
        assert!(!schema::names_are_distinct(&[f("X", Src::Nested(INNER))]));
    }

    #[test]
    fn the_success_block_is_written_as_the_map_would_write_it() {
        for (context, xpci) in [
            (None, None),
            (Some(""), None),
            (Some("c<1>&"), Some(" 1.0001 ")),
            (None, Some("")),
        ] {
            let shape = OldShape {
                old: OldService::Rate,
                shape: AnswerShape {
                    service: Service::Rate,
                    customer_context: context.map(Into::into),
                    all_activity: false,
                },
                xpci_version: xpci.map(Into::into),
            };
            let mut direct = String::new();
            write_success_block(&mut direct, &shape);
            let mut mapped = String::new();
            let block = response_block(Some(&shape), true, &[]);
            xmljson::write_json(&mut mapped, None, "Response", &block);
            assert_eq!(direct, mapped, "{context:?} {xpci:?}");
        }
    }

    /// A rate's shape, with a context and a version to echo.
    fn rate_shape() -> OldShape {
        OldShape {
            old: OldService::Rate,
            shape: AnswerShape {
                service: Service::Rate,
                customer_context: Some("c<1>".into()),
                all_activity: false,
            },
            xpci_version: Some("1.0001".into()),
        }
    }

    /// A rate as UPS answers it, members in `Rating.yaml`'s order: the negotiated rate before
    /// `RatedPackage` and the guaranteed delivery after it, the other way round from the old
    /// answer.
    const UPS_RATE: &str = r#"{"RateResponse":{"Response":{"ResponseStatus":{"Code":"1","Description":"Success"},"Alert":[{"Code":"110971","Description":"Your invoice may vary"}],"TransactionReference":{"CustomerContext":"cart-4411"}},"RatedShipment":[{"Disclaimer":[{"Code":"01","Description":"Taxes are included"}],"Service":{"Code":"02","Description":""},"RatedShipmentAlert":[{"Code":"110971","Description":"Your invoice may vary from the displayed reference rates"}],"BillingWeight":{"UnitOfMeasurement":{"Code":"LBS","Description":"Pounds"},"Weight":"3.0"},"TransportationCharges":{"CurrencyCode":"USD","MonetaryValue":"18.70"},"BaseServiceCharge":{"CurrencyCode":"USD","MonetaryValue":"18.70"},"ItemizedCharges":[{"Code":"270","CurrencyCode":"USD","MonetaryValue":"0.00"}],"ServiceOptionsCharges":{"CurrencyCode":"USD","MonetaryValue":"0.00"},"TotalCharges":{"CurrencyCode":"USD","MonetaryValue":"18.70"},"TotalChargesWithTaxes":{"CurrencyCode":"USD","MonetaryValue":"20.20"},"NegotiatedRateCharges":{"TotalCharge":{"CurrencyCode":"USD","MonetaryValue":"15.90"}},"RatedPackage":[{"TransportationCharges":{"CurrencyCode":"USD","MonetaryValue":"18.70"},"ServiceOptionsCharges":{"CurrencyCode":"USD","MonetaryValue":"0.00"},"TotalCharges":{"CurrencyCode":"USD","MonetaryValue":"18.70"},"Weight":"3.0","BillingWeight":{"UnitOfMeasurement":{"Code":"LBS","Description":"Pounds"},"Weight":"3.0"}}],"TimeInTransit":{"PickupDate":"20261204"},"GuaranteedDelivery":{"BusinessDaysInTransit":"2","DeliveryByTime":"10:30 A.M."}},{"Service":{"Code":"03"},"TotalCharges":{"CurrencyCode":"USD","MonetaryValue":"9.10"}}]}}"#;

    #[test]
    fn a_rate_in_ups_s_order_is_streamed_in_the_old_order() {
        let shape = rate_shape();
        let streamed = rate_streamed(&shape, UPS_RATE.as_bytes()).expect("streams");
        let by_map = answer_by_map(&shape, 200, Bytes::from(UPS_RATE), None);
        assert_eq!(streamed.body, by_map.body);
        let text = std::str::from_utf8(&streamed.body).unwrap();
        let at = |s: &str| text.find(s).unwrap_or_else(|| panic!("{s} in {text}"));
        assert!(at("<GuaranteedDaysToDelivery>2<") < at("<RatedPackage>"));
        assert!(at("<ScheduledDeliveryTime>10:30 A.M.<") < at("<RatedPackage>"));
        assert!(at("<RatedPackage>") < at("<NegotiatedRates>"));
        assert!(text.contains(
            "<NegotiatedRates><NetSummaryCharges><GrandTotal><CurrencyCode>USD</CurrencyCode>\
             <MonetaryValue>15.90</MonetaryValue></GrandTotal></NetSummaryCharges></NegotiatedRates>"
        ));
        // The second rate: what UPS left out is empty where old clients expect an element.
        assert!(text.contains(
            "<RatedShipment><Service><Code>03</Code></Service><TotalCharges><CurrencyCode>USD\
             </CurrencyCode><MonetaryValue>9.10</MonetaryValue></TotalCharges>\
             <GuaranteedDaysToDelivery/><ScheduledDeliveryTime/></RatedShipment>"
        ));
        // `answer` takes the stream for it.
        assert_eq!(
            answer(&shape, 200, Bytes::from(UPS_RATE), None).body,
            streamed.body
        );
    }

    /// For thousands of generated rate answers, whatever the stream writes is the document the
    /// map writes; most stream, some go to the tree.
    #[test]
    fn a_streamed_rate_is_the_map_s_rate() {
        use crate::dialect::generated_json::Rng;
        use crate::dialect::schema::stream::generated::{object, Shape};
        let (shape, members) = (rate_shape(), Shape::of(RATE_ANSWER));
        let (mut streamed, cases) = (0, 3000u32);
        for seed in 1..=cases {
            let mut rng = Rng(u64::from(seed).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut body = String::from(r#"{"RateResponse":"#);
            object(&mut rng, &members, 0, &mut body);
            body.push('}');
            let Some(written) = rate_streamed(&shape, body.as_bytes()) else {
                continue;
            };
            streamed += 1;
            let by_map = answer_by_map(&shape, 200, Bytes::from(body.clone()), None);
            assert_eq!(written.body, by_map.body, "seed {seed}: {body}");
        }
        eprintln!("{streamed} of {cases} generated rates streamed");
        assert!(streamed * 2 > cases, "only {streamed} streamed");
        assert!(streamed < cases, "the stops are not exercised");
    }

    #[test]
    fn a_rate_is_written_straight_as_the_map_would_write_it() {
        let shape = rate_shape();
        let one = r#"{"Service":{"Code":"02"},"RatedShipmentAlert":[{"Code":"1","Description":"a & b"}],"BillingWeight":{"UnitOfMeasurement":{"Code":"LBS"},"Weight":"3.0"},"TransportationCharges":{"CurrencyCode":"USD","MonetaryValue":"21.35"},"TotalCharges":{"CurrencyCode":"USD","MonetaryValue":21.35},"NegotiatedRateCharges":{"TotalCharge":{"CurrencyCode":"USD","MonetaryValue":"18.15"}},"RatedPackage":[{"Weight":"3.0","TotalCharges":{"CurrencyCode":"USD","MonetaryValue":""}},{"Weight":null}],"GuaranteedDelivery":{"BusinessDaysInTransit":2}}"#;
        let answers = [
            format!(r#"{{"RateResponse":{{"RatedShipment":{one}}}}}"#),
            format!(r#"{{"RateResponse":{{"RatedShipment":[{one},{one},{{}}]}}}}"#),
            r#"{"RateResponse":{}}"#.to_string(),
        ];
        for body in answers {
            let arena = bumpalo::Bump::new();
            let parsed = tree::parse_in(&arena, body.as_bytes()).unwrap();
            let rest = parsed.field("RateResponse").unwrap();
            let written = rate_written(&shape, rest).expect("written straight");
            let by_map = templated_by_map(&shape, rest, None);
            assert_eq!(written.body, by_map.body, "{body}");
        }
        // A member named twice: the map keeps one, so the map writes it.
        let twice =
            r#"{"RateResponse":{"RatedShipment":{"BillingWeight":{"Weight":"1","Weight":"2"}}}}"#;
        let arena = bumpalo::Bump::new();
        let parsed = tree::parse_in(&arena, twice.as_bytes()).unwrap();
        assert!(rate_written(&shape, parsed.field("RateResponse").unwrap()).is_none());
        let a = answer(&shape, 200, Bytes::from(twice), None);
        assert!(std::str::from_utf8(&a.body)
            .unwrap()
            .contains("<Weight>2</Weight>"));
        // So is an object of very many members (looked up linearly when written straight).
        let wide: Vec<String> = (0..100).map(|i| format!(r#""M{i}":"{i}""#)).collect();
        let wide = format!(
            r#"{{"RateResponse":{{"RatedShipment":{{"BillingWeight":{{{}}}}}}}}}"#,
            wide.join(",")
        );
        let parsed = tree::parse_in(&arena, wide.as_bytes()).unwrap();
        let rest = parsed.field("RateResponse").unwrap();
        assert!(rate_written(&shape, rest).is_none());
        let a = answer(&shape, 200, Bytes::from(wide.clone()), None);
        assert!(std::str::from_utf8(&a.body)
            .unwrap()
            .contains("<M99>99</M99>"));
    }

    fn route(svc: &str) -> Route {
        Route {
            dialect: &OldXml,
            service: svc.to_string(),
        }
    }

    const ACCESS: &str = r#"<?xml version="1.0"?>
<AccessRequest xml:lang="en-US"><AccessLicenseNumber>ACCESSKEY123</AccessLicenseNumber><UserId>legacyuser</UserId><Password>legacypass</Password></AccessRequest>"#;

    /// legacy-dialects Appendix A.1, verbatim.
    const RATE: &str = r#"<?xml version="1.0"?>
<RatingServiceSelectionRequest><Request><RequestAction>Rate</RequestAction><RequestOption>Rate</RequestOption></Request>
<Shipment><Shipper><ShipperNumber>9Y9Y9Y</ShipperNumber><Address><AddressLine1>10 Elm Rd</AddressLine1><City>Dover</City><StateProvinceCode>DE</StateProvinceCode><PostalCode>19901</PostalCode><CountryCode>US</CountryCode></Address></Shipper>
<ShipTo><CompanyName>Acme</CompanyName><Address><AddressLine1>5 Oak Ave</AddressLine1><City>Reno</City><StateProvinceCode>NV</StateProvinceCode><PostalCode>89501</PostalCode><CountryCode>US</CountryCode><ResidentialAddressIndicator/></Address></ShipTo>
<Service><Code>03</Code></Service><Package><PackagingType><Code>02</Code></PackagingType><PackageWeight><UnitOfMeasurement><Code>LBS</Code></UnitOfMeasurement><Weight>3</Weight></PackageWeight></Package>
<RateInformation><NegotiatedRatesIndicator/></RateInformation></Shipment></RatingServiceSelectionRequest>"#;

    #[test]
    fn appendix_a1_becomes_the_documented_rest_body() {
        let p = parse(&route("Rate"), format!("{ACCESS}\n{RATE}").as_bytes()).unwrap();
        assert_eq!(p.credentials.access_key, "ACCESSKEY123");
        assert_eq!(p.credentials.user_id, "legacyuser");
        assert_eq!(p.credentials.password.expose(), "legacypass");
        let (call, body) = CannedUps::sent(p);
        assert_eq!(call.path_and_query, "/api/rating/v2409/Rate");
        let v: Value = serde_json::from_slice(&body.unwrap()).unwrap();
        let expected = json!({"RateRequest":{"Request":{"RequestOption":"Rate"},
         "Shipment":{"Shipper":{"ShipperNumber":"9Y9Y9Y","Address":{"City":"Dover","StateProvinceCode":"DE","PostalCode":"19901","CountryCode":"US","AddressLine":["10 Elm Rd"]}},
          "ShipTo":{"Address":{"City":"Reno","StateProvinceCode":"NV","PostalCode":"89501","CountryCode":"US","ResidentialAddressIndicator":"","AddressLine":["5 Oak Ave"]},"Name":"Acme"},
          "Service":{"Code":"03"},
          "Package":[{"PackagingType":{"Code":"02"},"PackageWeight":{"UnitOfMeasurement":{"Code":"LBS"},"Weight":"3"}}],
          "ShipmentRatingOptions":{"NegotiatedRatesIndicator":""}}}});
        assert_eq!(v, expected);
    }

    #[test]
    fn rate_answer_uses_old_names_in_old_order() {
        let p = parse(&route("rate"), format!("{ACCESS}{RATE}").as_bytes()).unwrap();
        let rest = br#"{"RateResponse":{"Response":{"ResponseStatus":{"Code":"1"}},"RatedShipment":{"Service":{"Code":"03","Description":"Ground"},
          "RatedShipmentAlert":[{"Code":"1","Description":"w1"},{"Code":"2","Description":"w2"}],"TotalCharges":{"CurrencyCode":"USD","MonetaryValue":"9.10"},
          "NegotiatedRateCharges":{"TotalCharge":{"CurrencyCode":"USD","MonetaryValue":"7.00"}},"RatedPackage":{"Weight":"3.0"},"ItemizedCharges":[{"Code":"x"}]}}}"#;
        let a = CannedUps::new(200, &rest[..]).run(p.request).unwrap();
        assert_eq!(a.status, 200);
        assert_eq!(
            std::str::from_utf8(&a.body).unwrap(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><RatingServiceSelectionResponse><Response><ResponseStatusCode>1</ResponseStatusCode><ResponseStatusDescription>Success</ResponseStatusDescription></Response>\
<RatedShipment><Service><Code>03</Code></Service><RatedShipmentWarning>w1</RatedShipmentWarning><RatedShipmentWarning>w2</RatedShipmentWarning>\
<TotalCharges><CurrencyCode>USD</CurrencyCode><MonetaryValue>9.10</MonetaryValue></TotalCharges><GuaranteedDaysToDelivery/><ScheduledDeliveryTime/>\
<RatedPackage><Weight>3.0</Weight></RatedPackage><NegotiatedRates><NetSummaryCharges><GrandTotal><CurrencyCode>USD</CurrencyCode><MonetaryValue>7.00</MonetaryValue></GrandTotal></NetSummaryCharges></NegotiatedRates></RatedShipment></RatingServiceSelectionResponse>"
        );
    }

    #[test]
    fn ship_confirm_translates_payment_labels_and_prices_with_rate() {
        let confirm = r#"<ShipmentConfirmRequest><Request><RequestAction>ShipConfirm</RequestAction><RequestOption>validate</RequestOption><TransactionReference><CustomerContext>o-1</CustomerContext><XpciVersion>1.0001</XpciVersion></TransactionReference></Request>
<Shipment><Shipper><Name>East</Name><PhoneNumber>5551234</PhoneNumber><ShipperNumber>9Y9Y9Y</ShipperNumber><Address><AddressLine1>10 Elm Rd</AddressLine1><City>Dover</City><CountryCode>US</CountryCode></Address></Shipper>
<ShipTo><CompanyName>Acme</CompanyName><Address><AddressLine1>5 Oak</AddressLine1><AddressLine2></AddressLine2><CountryCode>US</CountryCode></Address></ShipTo>
<PaymentInformation><Prepaid><BillShipper><AccountNumber>9Y9Y9Y</AccountNumber></BillShipper></Prepaid></PaymentInformation>
<Service><Code>03</Code></Service><Package><PackagingType><Code>02</Code></PackagingType><PackageWeight><Weight>5</Weight></PackageWeight></Package></Shipment>
<LabelSpecification><LabelPrintMethod><Code>GIF</Code></LabelPrintMethod><HTTPUserAgent>Mozilla/4.5</HTTPUserAgent></LabelSpecification></ShipmentConfirmRequest>"#;
        let p = parse(
            &route("ShipConfirm"),
            format!("{ACCESS}{confirm}").as_bytes(),
        )
        .unwrap();
        let mut ups = CannedUps::new(200, &br#"{"RateResponse":{}}"#[..]);
        let answer = ups.run(p.request).unwrap();
        let [(rate, Some(rate_body)), (ship, Some(ship_body))] = &ups.calls[..] else {
            panic!("a rate call, then the ship call prepared: {:?}", ups.calls)
        };
        assert_eq!(rate.path_and_query, "/api/rating/v2409/Rate");
        assert_eq!(ship.path_and_query, "/api/shipments/v2409/ship");
        let text = std::str::from_utf8(&answer.body).unwrap();
        assert!(
            text.contains("<TransactionReference><CustomerContext>o-1</CustomerContext><XpciVersion>1.0001</XpciVersion></TransactionReference>")
                && text.contains("<ShipmentDigest>canned-digest</ShipmentDigest>"),
            "{text}"
        );
        let s: Value = serde_json::from_slice(ship_body).unwrap();
        let sr = &s["ShipmentRequest"];
        assert_eq!(sr["Request"]["RequestOption"], "validate");
        assert_eq!(
            sr["Shipment"]["PaymentInformation"],
            json!({"ShipmentCharge": [{"BillShipper": {"AccountNumber": "9Y9Y9Y"}, "Type": "01"}]})
        );
        assert_eq!(
            sr["Shipment"]["Shipper"]["Phone"],
            json!({"Number": "5551234"})
        );
        assert_eq!(sr["Shipment"]["ShipTo"]["Name"], "Acme");
        assert_eq!(
            sr["Shipment"]["ShipTo"]["Address"]["AddressLine"],
            json!(["5 Oak"])
        );
        assert_eq!(
            sr["Shipment"]["Package"][0]["Packaging"],
            json!({"Code": "02"})
        );
        assert_eq!(
            sr["LabelSpecification"],
            json!({"HTTPUserAgent": "Mozilla/4.5", "LabelImageFormat": {"Code": "GIF"}, "LabelStockSize": {"Height": "6", "Width": "4"}})
        );
        let r: Value = serde_json::from_slice(rate_body).unwrap();
        let rs = &r["RateRequest"]["Shipment"];
        assert_eq!(rs["Package"][0]["PackagingType"], json!({"Code": "02"}));
        assert_eq!(rs["PaymentDetails"]["ShipmentCharge"][0]["Type"], "01");
        assert!(rs["Shipper"].get("Phone").is_none());
        assert!(r["RateRequest"].get("LabelSpecification").is_none());
    }

    #[test]
    fn errors_and_refusals_are_old_error_documents() {
        let a = OldXml.refusal(&route("Track"), &Failure::Malformed("x".into()));
        assert_eq!(a.status, 200);
        let text = std::str::from_utf8(&a.body).unwrap();
        assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><TrackResponse><Response><ResponseStatusCode>0</ResponseStatusCode><ResponseStatusDescription>Failure</ResponseStatusDescription><Error><ErrorSeverity>Hard</ErrorSeverity><ErrorCode>10001</ErrorCode>"), "{text}");
        let a = OldXml.refusal(&route("Locator"), &Failure::Empty);
        assert!(std::str::from_utf8(&a.body)
            .unwrap()
            .contains("<LocatorResponse>"));
        // Only an AccessRequest: credentials found, the plan says what is missing.
        let p = parse(&route("Rate"), ACCESS.as_bytes()).unwrap();
        assert!(matches!(p.request, Err(Failure::MissingField(_))));
        // A request without AccessRequest: no credentials.
        let p = parse(&route("Rate"), RATE.as_bytes()).unwrap();
        assert_eq!(p.credentials.access_key, "");
        assert!(matches!(
            parse(&route("Rate"), b"<a>"),
            Err(Failure::Malformed(_))
        ));
    }
}
