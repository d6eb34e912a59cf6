//! The UPS services upsbridge reaches through the body dialects: the catalogue every dialect
//! names its requests by (their XOLTWS request and answer roots, and the label logs and
//! metrics use). Shared vocabulary, so it depends on no dialect.

/// The services reachable through the body dialects, named by their XOLTWS request root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Rate,
    Ship,
    Void,
    Track,
    TimeInTransit,
    Xav,
    PickupCreation,
    PickupRate,
    PickupCancel,
    PickupPendingStatus,
    PickupPoliticalDivision1,
    PickupServiceCenters,
    Locator,
    LabelRecovery,
    QuantumView,
}

impl Service {
    /// The service of a request root element / top-level JSON key.
    pub fn from_request_root(root: &str) -> Option<Service> {
        Some(match root {
            "RateRequest" => Service::Rate,
            "ShipmentRequest" => Service::Ship,
            "VoidShipmentRequest" => Service::Void,
            "TrackRequest" => Service::Track,
            "TimeInTransitRequest" => Service::TimeInTransit,
            "XAVRequest" => Service::Xav,
            "PickupCreationRequest" => Service::PickupCreation,
            "PickupRateRequest" => Service::PickupRate,
            "PickupCancelRequest" => Service::PickupCancel,
            "PickupPendingStatusRequest" => Service::PickupPendingStatus,
            "PickupGetPoliticalDivision1ListRequest" => Service::PickupPoliticalDivision1,
            "PickupGetServiceCenterFacilitiesRequest" => Service::PickupServiceCenters,
            "LocatorRequest" => Service::Locator,
            "LabelRecoveryRequest" => Service::LabelRecovery,
            "QuantumViewRequest" => Service::QuantumView,
            _ => return None,
        })
    }

    /// The XOLTWS answer root.
    pub fn response_root(self) -> &'static str {
        match self {
            Service::Rate => "RateResponse",
            Service::Ship => "ShipmentResponse",
            Service::Void => "VoidShipmentResponse",
            Service::Track => "TrackResponse",
            Service::TimeInTransit => "TimeInTransitResponse",
            Service::Xav => "XAVResponse",
            Service::PickupCreation => "PickupCreationResponse",
            Service::PickupRate => "PickupRateResponse",
            Service::PickupCancel => "PickupCancelResponse",
            Service::PickupPendingStatus => "PickupPendingStatusResponse",
            Service::PickupPoliticalDivision1 => "PickupGetPoliticalDivision1ListResponse",
            Service::PickupServiceCenters => "PickupGetServiceCenterFacilitiesResponse",
            Service::Locator => "LocatorResponse",
            Service::LabelRecovery => "LabelRecoveryResponse",
            Service::QuantumView => "QuantumViewResponse",
        }
    }

    /// Label for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Service::Rate => "rate",
            Service::Ship => "ship",
            Service::Void => "void",
            Service::Track => "track",
            Service::TimeInTransit => "time_in_transit",
            Service::Xav => "xav",
            Service::PickupCreation => "pickup_create",
            Service::PickupRate => "pickup_rate",
            Service::PickupCancel => "pickup_cancel",
            Service::PickupPendingStatus => "pickup_status",
            Service::PickupPoliticalDivision1 => "pickup_countries",
            Service::PickupServiceCenters => "pickup_service_centers",
            Service::Locator => "locator",
            Service::LabelRecovery => "label_recovery",
            Service::QuantumView => "quantum_view",
        }
    }
}
