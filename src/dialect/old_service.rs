//! The old-XML services, named by their `/ups.app/xml/<Svc>` path segment: the vocabulary
//! the shared answer shape needs to remember which one a request was, without depending on
//! the old-XML dialect itself (which depends on the shared services).

/// The old-XML services upsbridge translates, named by their path segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldService {
    Rate,
    Track,
    ShipConfirm,
    ShipAccept,
    Void,
    TimeInTransit,
    /// City/state/ZIP validation, emulated with XAV.
    Av,
    Xav,
}

impl OldService {
    /// Every service.
    pub const ALL: [OldService; 8] = [
        OldService::Rate,
        OldService::Track,
        OldService::ShipConfirm,
        OldService::ShipAccept,
        OldService::Void,
        OldService::TimeInTransit,
        OldService::Av,
        OldService::Xav,
    ];

    /// From the `<Svc>` path segment (any case).
    pub fn from_path(segment: &str) -> Option<OldService> {
        Some(match segment.to_ascii_lowercase().as_str() {
            "rate" => OldService::Rate,
            "track" => OldService::Track,
            "shipconfirm" => OldService::ShipConfirm,
            "shipaccept" => OldService::ShipAccept,
            "void" => OldService::Void,
            "timeintransit" => OldService::TimeInTransit,
            "av" => OldService::Av,
            "xav" => OldService::Xav,
            _ => return None,
        })
    }

    pub fn request_root(self) -> &'static str {
        match self {
            OldService::Rate => "RatingServiceSelectionRequest",
            OldService::Track => "TrackRequest",
            OldService::ShipConfirm => "ShipmentConfirmRequest",
            OldService::ShipAccept => "ShipmentAcceptRequest",
            OldService::Void => "VoidShipmentRequest",
            OldService::TimeInTransit => "TimeInTransitRequest",
            OldService::Av | OldService::Xav => "AddressValidationRequest",
        }
    }

    pub fn response_root(self) -> &'static str {
        match self {
            OldService::Rate => "RatingServiceSelectionResponse",
            OldService::Track => "TrackResponse",
            OldService::ShipConfirm => "ShipmentConfirmResponse",
            OldService::ShipAccept => "ShipmentAcceptResponse",
            OldService::Void => "VoidShipmentResponse",
            OldService::TimeInTransit => "TimeInTransitResponse",
            OldService::Av | OldService::Xav => "AddressValidationResponse",
        }
    }

    /// The member of the REST answer the answer template reads.
    pub(super) fn rest_root(self) -> &'static str {
        match self {
            OldService::Rate | OldService::ShipConfirm => "RateResponse",
            OldService::Track => "trackResponse",
            OldService::ShipAccept => "ShipmentResponse",
            OldService::Void => "VoidShipmentResponse",
            OldService::TimeInTransit => "emsResponse",
            OldService::Av | OldService::Xav => "XAVResponse",
        }
    }
}
