//! Old XML (`/ups.app/xml/<Svc>`): not translated yet; every request is refused in a plain document.
use bytes::Bytes;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldService {
    Rate,
}

pub struct OldXml;

impl super::BodyDialect for OldXml {
    fn parse(&self, route: &super::Route, _b: &[u8]) -> Result<super::Parsed, super::Failure> {
        Err(super::Failure::UnknownService(route.service.clone()))
    }
    fn answer(&self, _s: &super::services::AnswerShape, status: u16, body: Bytes) -> super::Answer {
        super::Answer {
            status,
            content_type: "application/json",
            body,
            error_kind: None,
        }
    }
    fn refusal(
        &self,
        _r: &super::Route,
        _s: Option<&super::services::AnswerShape>,
        f: &super::Failure,
    ) -> super::Answer {
        super::Answer {
            status: 200,
            content_type: "text/xml",
            body: Bytes::from(f.to_string()),
            error_kind: Some(f.kind()),
        }
    }
}
