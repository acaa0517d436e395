//! What `meshroute serve` writes on an Envoy ext_proc stream: serialized
//! `envoy.service.ext_proc.v3.ProcessingResponse` messages for the answer
//! [`meshroute_core::RouteTable::exchange`] computes (docs/envoy.md, "Serve side").
//!
//! A hand-written protobuf encoder for the few messages and fields those answers use, so serve
//! builds no message in Python and the core stays free of protobuf. Fields are written in
//! field-number order and proto3 defaults (empty strings and bytes, zero, unset messages) are left
//! out, as protobuf's own serializers do: the bytes equal `SerializeToString()` of the same
//! message (tests/extproc/test_exchange_parity.py checks that, and decodes them, on every
//! generated request).
//!
//! - [`Exchange::Forward`] → `request_headers.response.header_mutation` (always present, even
//!   empty: Envoy clears the route cache only with a mutation, envoy-facts Q1h): `set_headers` =
//!   the sets (`append` unset: overwrite), then the appends (`append: BoolValue{true}`, the only
//!   append field Envoy 1.40 reads, Q5l); `remove_headers`. With response operations,
//!   `mode_override.response_header_mode = SEND` and a second message for the stream's
//!   `response_headers`: `response_headers.response.header_mutation` with them.
//! - [`Exchange::Reply`] → `immediate_response`: `status.code`, `headers.set_headers` (sets, then
//!   appends), `body`, `details`.
#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use meshroute_core::{Exchange, Forward, Header, LocalReply, ResponseOps};

/// Field numbers, from the descriptors of Envoy's API as xds-protos ships them
/// (`external_processor_pb2.DESCRIPTOR`, `base_pb2`, `http_status_pb2`, `processing_mode_pb2`,
/// `wrappers_pb2`); the `.proto` file is named above each message.
mod field {
    /// `envoy.service.ext_proc.v3.ProcessingResponse`
    /// (envoy/service/ext_proc/v3/external_processor.proto).
    pub(crate) mod processing_response {
        pub(crate) const REQUEST_HEADERS: u32 = 1;
        pub(crate) const RESPONSE_HEADERS: u32 = 2;
        pub(crate) const IMMEDIATE_RESPONSE: u32 = 7;
        pub(crate) const MODE_OVERRIDE: u32 = 9;
    }
    /// `envoy.service.ext_proc.v3.HeadersResponse` (same file).
    pub(crate) mod headers_response {
        pub(crate) const RESPONSE: u32 = 1;
    }
    /// `envoy.service.ext_proc.v3.CommonResponse` (same file).
    pub(crate) mod common_response {
        pub(crate) const HEADER_MUTATION: u32 = 2;
    }
    /// `envoy.service.ext_proc.v3.HeaderMutation` (same file).
    pub(crate) mod header_mutation {
        pub(crate) const SET_HEADERS: u32 = 1;
        pub(crate) const REMOVE_HEADERS: u32 = 2;
    }
    /// `envoy.service.ext_proc.v3.ImmediateResponse` (same file).
    pub(crate) mod immediate_response {
        pub(crate) const STATUS: u32 = 1;
        pub(crate) const HEADERS: u32 = 2;
        pub(crate) const BODY: u32 = 3;
        pub(crate) const DETAILS: u32 = 5;
    }
    /// `envoy.type.v3.HttpStatus` (envoy/type/v3/http_status.proto).
    pub(crate) mod http_status {
        pub(crate) const CODE: u32 = 1;
    }
    /// `envoy.config.core.v3.HeaderValueOption` (envoy/config/core/v3/base.proto).
    pub(crate) mod header_value_option {
        pub(crate) const HEADER: u32 = 1;
        pub(crate) const APPEND: u32 = 2;
    }
    /// `envoy.config.core.v3.HeaderValue` (same file).
    pub(crate) mod header_value {
        pub(crate) const KEY: u32 = 1;
        pub(crate) const RAW_VALUE: u32 = 3;
    }
    /// `google.protobuf.BoolValue` (google/protobuf/wrappers.proto).
    pub(crate) mod bool_value {
        pub(crate) const VALUE: u32 = 1;
    }
    /// `envoy.extensions.filters.http.ext_proc.v3.ProcessingMode`
    /// (envoy/extensions/filters/http/ext_proc/v3/processing_mode.proto).
    pub(crate) mod processing_mode {
        pub(crate) const RESPONSE_HEADER_MODE: u32 = 2;
        /// `ProcessingMode.HeaderSendMode.SEND`.
        pub(crate) const SEND: u64 = 1;
    }
}

use field::{
    bool_value, common_response, header_mutation, header_value, header_value_option,
    headers_response, http_status, immediate_response, processing_mode, processing_response,
};

/// The bytes serve writes for one request, and what it counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The outcome label (`route`, `abort`, `redirect`, `direct_response`, `no_route`,
    /// `no_cluster`, `cors_preflight`).
    pub outcome: &'static str,
    /// The `ProcessingResponse` answering `request_headers`.
    pub request: Vec<u8>,
    /// The `ProcessingResponse` answering `response_headers`; `None`: the request answer asks for
    /// no response phase, so the stream ends after one round trip.
    pub response: Option<Vec<u8>>,
    /// A fault delay fired.
    pub fault_delay: bool,
    /// A fault abort fired.
    pub fault_abort: bool,
}

/// Serializes one exchange answer.
#[must_use]
pub fn answer(exchange: &Exchange) -> Answer {
    match exchange {
        Exchange::Forward(f) => forward(f),
        Exchange::Reply(r) => Answer {
            outcome: r.outcome,
            request: reply(r),
            response: None,
            fault_delay: false,
            fault_abort: false,
        },
    }
}

fn forward(f: &Forward) -> Answer {
    let request = Mutation {
        set: &f.set,
        append: &f.append,
        remove: &f.remove,
    };
    let headers = headers_response_len(&request);
    // mode_override {response_header_mode: SEND}
    let mode = varint_field_len(processing_mode::SEND);
    let send = f.response.is_some();
    let mut out =
        Vec::with_capacity(len_field_len(headers) + if send { len_field_len(mode) } else { 0 });
    write_headers_response(&mut out, processing_response::REQUEST_HEADERS, &request);
    if send {
        len_header(&mut out, processing_response::MODE_OVERRIDE, mode);
        varint_field(
            &mut out,
            processing_mode::RESPONSE_HEADER_MODE,
            processing_mode::SEND,
        );
    }
    Answer {
        outcome: f.outcome,
        request: out,
        response: f.response.as_ref().map(response),
        fault_delay: f.fault_delay,
        fault_abort: f.fault_abort,
    }
}

/// The answer to the stream's `response_headers` message.
fn response(ops: &ResponseOps) -> Vec<u8> {
    let m = Mutation {
        set: &ops.set,
        append: &ops.append,
        remove: &ops.remove,
    };
    let mut out = Vec::with_capacity(len_field_len(headers_response_len(&m)));
    write_headers_response(&mut out, processing_response::RESPONSE_HEADERS, &m);
    out
}

fn reply(r: &LocalReply) -> Vec<u8> {
    let headers = Mutation {
        set: &r.headers,
        append: &r.append,
        remove: &[],
    };
    let has_headers = !(r.headers.is_empty() && r.append.is_empty());
    let status = if r.status == 0 {
        0
    } else {
        varint_field_len(u64::from(r.status))
    };
    let imm = len_field_len(status)
        + if has_headers {
            len_field_len(headers.len())
        } else {
            0
        }
        + opt_bytes_len(&r.body)
        + opt_bytes_len(r.details.as_bytes());
    let mut out = Vec::with_capacity(len_field_len(imm));
    len_header(&mut out, processing_response::IMMEDIATE_RESPONSE, imm);
    len_header(&mut out, immediate_response::STATUS, status);
    if r.status != 0 {
        varint_field(&mut out, http_status::CODE, u64::from(r.status));
    }
    if has_headers {
        len_header(&mut out, immediate_response::HEADERS, headers.len());
        headers.write(&mut out);
    }
    opt_bytes_field(&mut out, immediate_response::BODY, &r.body);
    opt_bytes_field(&mut out, immediate_response::DETAILS, r.details.as_bytes());
    out
}

/// `HeadersResponse{response: CommonResponse{header_mutation}}`: the mutation is always written.
fn headers_response_len(m: &Mutation<'_>) -> usize {
    len_field_len(len_field_len(m.len()))
}

fn write_headers_response(out: &mut Vec<u8>, field: u32, m: &Mutation<'_>) {
    let mutation = m.len();
    let common = len_field_len(mutation);
    len_header(out, field, len_field_len(common));
    len_header(out, headers_response::RESPONSE, common);
    len_header(out, common_response::HEADER_MUTATION, mutation);
    m.write(out);
}

/// An `envoy.service.ext_proc.v3.HeaderMutation`.
struct Mutation<'a> {
    set: &'a [Header],
    append: &'a [Header],
    remove: &'a [String],
}

impl Mutation<'_> {
    fn len(&self) -> usize {
        let sets = self.set.iter().map(|(k, v)| option_len(k, v, false));
        let appends = self.append.iter().map(|(k, v)| option_len(k, v, true));
        sets.chain(appends).map(len_field_len).sum::<usize>()
            + self
                .remove
                .iter()
                .map(|r| len_field_len(r.len()))
                .sum::<usize>()
    }

    fn write(&self, out: &mut Vec<u8>) {
        for (k, v) in self.set {
            write_option(out, k, v, false);
        }
        for (k, v) in self.append {
            write_option(out, k, v, true);
        }
        for name in self.remove {
            // A repeated string: every element is written, even an empty one.
            len_header(out, header_mutation::REMOVE_HEADERS, name.len());
            out.extend_from_slice(name.as_bytes());
        }
    }
}

/// `HeaderValueOption{header: HeaderValue{key, raw_value}, append: BoolValue{true}?}`.
fn option_len(key: &str, value: &str, append: bool) -> usize {
    len_field_len(header_value_len(key, value)) + if append { APPEND_LEN } else { 0 }
}

/// `append: BoolValue{value: true}`: tag, length, and the value's tag and byte.
const APPEND_LEN: usize = 4;

fn header_value_len(key: &str, value: &str) -> usize {
    opt_bytes_len(key.as_bytes()) + opt_bytes_len(value.as_bytes())
}

fn write_option(out: &mut Vec<u8>, key: &str, value: &str, append: bool) {
    len_header(
        out,
        header_mutation::SET_HEADERS,
        option_len(key, value, append),
    );
    len_header(
        out,
        header_value_option::HEADER,
        header_value_len(key, value),
    );
    opt_bytes_field(out, header_value::KEY, key.as_bytes());
    opt_bytes_field(out, header_value::RAW_VALUE, value.as_bytes());
    if append {
        len_header(out, header_value_option::APPEND, 2);
        varint_field(out, bool_value::VALUE, 1);
    }
}

// === wire format ===

const WIRE_VARINT: u32 = 0;
const WIRE_LEN: u32 = 2;

/// A field's key; every field number here is below 16, so one byte.
fn key(out: &mut Vec<u8>, field: u32, wire: u32) {
    debug_assert!(field < 16);
    varint(out, u64::from((field << 3) | wire));
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        // The low 7 bits, with the continuation bit.
        out.push((v & 0x7f) as u8 | 0x80);
        v >>= 7;
    }
    // v < 0x80 here.
    #[allow(clippy::cast_possible_truncation)]
    out.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// The size of a length-delimited field whose content is `len` bytes.
fn len_field_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// The size of a singular proto3 string/bytes field: nothing when empty.
fn opt_bytes_len(data: &[u8]) -> usize {
    if data.is_empty() {
        0
    } else {
        len_field_len(data.len())
    }
}

fn varint_field_len(v: u64) -> usize {
    1 + varint_len(v)
}

fn len_header(out: &mut Vec<u8>, field: u32, len: usize) {
    key(out, field, WIRE_LEN);
    varint(out, len as u64);
}

fn opt_bytes_field(out: &mut Vec<u8>, field: u32, data: &[u8]) {
    if !data.is_empty() {
        len_header(out, field, data.len());
        out.extend_from_slice(data);
    }
}

fn varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    key(out, field, WIRE_VARINT);
    varint(out, v);
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn h(k: &str, v: &str) -> Header {
        (k.to_owned(), v.to_owned())
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn forward_with(f: Forward) -> Answer {
        answer(&Exchange::Forward(f))
    }

    // Expected bytes: protobuf's own SerializeToString() of the same message (upb, protobuf 7.36).

    #[test]
    fn empty_forward_still_carries_a_mutation() {
        let a = forward_with(Forward {
            outcome: "route",
            ..Forward::default()
        });
        // request_headers { response { header_mutation {} } }
        assert_eq!(hex(&a.request), "0a040a021200");
        assert_eq!(
            (a.outcome, a.response, a.fault_delay),
            ("route", None, false)
        );
    }

    #[test]
    fn forward_sets_appends_removes_and_asks_for_the_response() {
        let a = forward_with(Forward {
            outcome: "abort",
            set: vec![h("a", "1"), h("b", "")],
            append: vec![h("c", "2")],
            remove: vec!["x".to_owned(), String::new()],
            response: Some(ResponseOps {
                set: vec![h("r", "v")],
                append: Vec::new(),
                remove: vec!["gone".to_owned()],
            }),
            fault_delay: true,
            fault_abort: true,
        });
        assert_eq!(
            hex(&a.request),
            "0a280a2612240a080a060a01611a01310a050a030a01620a0c0a060a01631a01321202080112017812004a021001"
        );
        assert_eq!(
            hex(a.response.as_deref().unwrap()),
            "12140a1212100a080a060a01721a01761204676f6e65"
        );
        assert!(a.fault_delay && a.fault_abort);
    }

    #[test]
    fn replies() {
        let reply = |status, headers, append, body: &[u8], details| {
            answer(&Exchange::Reply(LocalReply {
                outcome: "redirect",
                status,
                headers,
                append,
                body: body.to_vec(),
                details,
            }))
        };
        let a = reply(
            302,
            vec![h("location", "/x")],
            vec![h("x-a", "2")],
            b"hi",
            "redirect",
        );
        assert_eq!(
            hex(&a.request),
            "3a370a0308ae0212220a100a0e0a086c6f636174696f6e1a022f780a0e0a080a03782d611a0132120208011a0268692a087265646972656374"
        );
        assert_eq!((a.outcome, a.response), ("redirect", None));
        // No headers, no body: neither field is written.
        let a = reply(404, Vec::new(), Vec::new(), b"", "route_not_found");
        assert_eq!(
            hex(&a.request),
            "3a160a030894032a0f726f7574655f6e6f745f666f756e64"
        );
    }

    #[test]
    fn lengths_past_one_byte() {
        let value = "v".repeat(200);
        let a = forward_with(Forward {
            outcome: "route",
            set: vec![h("k", &value)],
            ..Forward::default()
        });
        assert_eq!(a.request.len(), 221);
        assert_eq!(hex(&a.request[..12]), "0ada010ad70112d4010ad101");
        let big = "v".repeat(20_000);
        let a = forward_with(Forward {
            outcome: "route",
            set: vec![h("k", &big)],
            ..Forward::default()
        });
        assert_eq!(
            a.request.capacity(),
            a.request.len(),
            "sizes computed exactly"
        );
        assert!(a.request.ends_with(big.as_bytes()));
    }

    #[test]
    fn varints() {
        for (v, bytes) in [
            (0_u64, vec![0_u8]),
            (1, vec![1]),
            (127, vec![0x7f]),
            (128, vec![0x80, 0x01]),
            (300, vec![0xac, 0x02]),
            (16_384, vec![0x80, 0x80, 0x01]),
            (u64::MAX, [[0xff_u8; 9].as_slice(), &[0x01]].concat()),
        ] {
            let mut out = Vec::new();
            varint(&mut out, v);
            assert_eq!(out, bytes, "{v}");
            assert_eq!(varint_len(v), bytes.len(), "{v}");
        }
    }
}
