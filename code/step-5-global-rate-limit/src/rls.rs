//! The part of Envoy's rate limit service API (RLS) this plugin uses:
//! `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`.
//!
//! The messages are derived with prost from the field numbers in Envoy's
//! `api/envoy/service/ratelimit/v3/rls.proto` and
//! `api/envoy/extensions/common/ratelimit/v3/ratelimit.proto`. Only the
//! fields the plugin reads or writes are declared: protobuf decoders skip
//! fields they do not know, so the service's other answers (headers to add,
//! metadata, quota) are read past, not misread.

/// The gRPC service and method, as `dispatch_grpc_call` takes them.
pub const SERVICE: &str = "envoy.service.ratelimit.v3.RateLimitService";
pub const METHOD: &str = "ShouldRateLimit";

// ANCHOR: request
/// `RateLimitRequest`: a domain and the descriptors to count.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RateLimitRequest {
    #[prost(string, tag = "1")]
    pub domain: String,
    #[prost(message, repeated, tag = "2")]
    pub descriptors: Vec<RateLimitDescriptor>,
    /// How much this request counts; 0 means 1.
    #[prost(uint32, tag = "3")]
    pub hits_addend: u32,
}

/// `RateLimitDescriptor`: a list of key/value entries that the service
/// matches against its configuration.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RateLimitDescriptor {
    #[prost(message, repeated, tag = "1")]
    pub entries: Vec<Entry>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Entry {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}
// ANCHOR_END: request

/// `RateLimitResponse`: the verdict over all descriptors, and one status
/// per descriptor, in the order they were sent.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RateLimitResponse {
    #[prost(enumeration = "Code", tag = "1")]
    pub overall_code: i32,
    #[prost(message, repeated, tag = "2")]
    pub statuses: Vec<DescriptorStatus>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Code {
    Unknown = 0,
    Ok = 1,
    OverLimit = 2,
}

/// `RateLimitResponse.DescriptorStatus`
#[derive(Clone, PartialEq, prost::Message)]
pub struct DescriptorStatus {
    #[prost(enumeration = "Code", tag = "1")]
    pub code: i32,
    #[prost(message, optional, tag = "2")]
    pub current_limit: Option<CurrentLimit>,
    #[prost(uint32, tag = "3")]
    pub limit_remaining: u32,
    #[prost(message, optional, tag = "4")]
    pub duration_until_reset: Option<Duration>,
}

/// `RateLimitResponse.RateLimit`: the limit the service applied.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CurrentLimit {
    #[prost(uint32, tag = "1")]
    pub requests_per_unit: u32,
    #[prost(enumeration = "Unit", tag = "2")]
    pub unit: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Unit {
    Unknown = 0,
    Second = 1,
    Minute = 2,
    Hour = 3,
    Day = 4,
    Month = 5,
    Year = 6,
    Week = 7,
}

/// `google.protobuf.Duration`
#[derive(Clone, PartialEq, prost::Message)]
pub struct Duration {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Unit {
    /// The window in seconds (months and years as the service counts them:
    /// 30 and 365 days).
    pub fn seconds(self) -> Option<u64> {
        match self {
            Unit::Unknown => None,
            Unit::Second => Some(1),
            Unit::Minute => Some(60),
            Unit::Hour => Some(3_600),
            Unit::Day => Some(86_400),
            Unit::Week => Some(7 * 86_400),
            Unit::Month => Some(30 * 86_400),
            Unit::Year => Some(365 * 86_400),
        }
    }
}

impl Duration {
    /// Whole seconds, rounded up: `Retry-After` must not invite a client
    /// back before the window has reset.
    pub fn ceil_seconds(&self) -> u64 {
        let seconds = u64::try_from(self.seconds).unwrap_or(0);
        if self.nanos > 0 {
            seconds.saturating_add(1)
        } else {
            seconds
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// The bytes of a request, checked against the protobuf encoding
    /// written out by hand from the .proto field numbers.
    #[test]
    fn a_request_encodes_as_the_proto_says() {
        let request = RateLimitRequest {
            domain: "d".into(),
            descriptors: vec![RateLimitDescriptor {
                entries: vec![Entry {
                    key: "k".into(),
                    value: "v".into(),
                }],
            }],
            hits_addend: 0,
        };
        let expected = [
            0x0a, 1, b'd', // domain = 1, length 1
            0x12, 8, // descriptors = 2, length 8
            0x0a, 6, // entries = 1, length 6
            0x0a, 1, b'k', // key = 1
            0x12, 1, b'v', // value = 2
        ];
        assert_eq!(request.encode_to_vec(), expected);
    }

    #[test]
    fn a_response_decodes_and_unknown_fields_are_skipped() {
        let bytes = [
            0x08, 2, // overall_code = OVER_LIMIT
            0x12, 16, // statuses = 2, length 16
            0x08, 2, // code = OVER_LIMIT
            0x12, 4, 0x08, 50, 0x10, 2, // current_limit: 50 per minute
            0x18, 0, // limit_remaining = 0
            0x22, 4, 0x08, 42, 0x10, // duration_until_reset: one byte short
        ];
        // The answer above ends one byte early: a broken answer is an
        // error, never a default.
        assert!(RateLimitResponse::decode(&bytes[..]).is_err());

        let bytes = [
            0x08, 2, // overall_code = OVER_LIMIT
            0x12, 16, // statuses = 2, length 16
            0x08, 2, // code = OVER_LIMIT
            0x12, 4, 0x08, 50, 0x10, 2, // current_limit: 50 per minute
            0x18, 0, // limit_remaining = 0
            0x22, 4, 0x08, 42, 0x10, 1, // duration_until_reset: 42 s, 1 ns
            0x2a, 1, b'x', // raw_body = 5: not declared, skipped
        ];
        let Ok(response) = RateLimitResponse::decode(&bytes[..]) else {
            panic!("a valid answer did not decode");
        };
        assert_eq!(response.overall_code(), Code::OverLimit);
        let status = &response.statuses[0];
        let limit = status.current_limit.clone().unwrap_or_default();
        assert_eq!(limit.requests_per_unit, 50);
        assert_eq!(limit.unit(), Unit::Minute);
        let reset = status.duration_until_reset.clone().unwrap_or_default();
        assert_eq!(reset.ceil_seconds(), 43);
    }

    #[test]
    fn units_are_windows_in_seconds() {
        assert_eq!(Unit::Minute.seconds(), Some(60));
        assert_eq!(Unit::Unknown.seconds(), None);
    }
}
