//! Envoy's C ABI for dynamic modules (Envoy 1.40, ABI `v0.2.0`) — the HTTP filter and, at the end,
//! the load-balancing policy: the only code in the crate allowed to use `unsafe`.
//!
//! Why `unsafe` is allowed here: Envoy calls the module through exported `extern "C"` hooks
//! (`envoy_dynamic_module_on_*`, `#[no_mangle]`) with raw pointers, and the module calls Envoy
//! back through C functions (`envoy_dynamic_module_callback_*`) that the dynamic linker resolves
//! against the Envoy binary when it loads the module. Both directions are raw FFI. This module
//! keeps that boundary small and turns it into safe values for the rest of the crate:
//! - each hook rebuilds the module's own objects from the pointers it handed Envoy
//!   (`Arc<FilterConfig>`, `Box<Stream>`, `Arc<LbConfig>`, `Box<WorkerLb>`) and runs the safe body
//!   under `catch_unwind`;
//! - [`HttpFilter`], [`ConfigHandle`], [`LbConfigHandle`], [`LbHosts`] and [`LbRequest`] wrap the
//!   callbacks; they are created only here, for the duration of one hook (their lifetime parameter
//!   keeps them from escaping it); [`LbCounters`] is the one handle kept beyond a hook (a balancer
//!   config's counters, valid as long as the config);
//! - [`log`] is Envoy's logger.
//!
//! The declarations follow `source/extensions/dynamic_modules/abi/abi.h` (v0.2.0) and hold only
//! what the module uses. C enums are passed as `u32`, buffers as `{ptr, len}` structs by value.
//! Every callback declared below is defined by the Envoy 1.40 binary (checked with `nm -D`) and
//! is exercised by `tests/e2e/test_module_smoke.py`, `tests/e2e/test_lb_policy.py` and (the
//! locality callbacks) `tests/e2e/test_lb_priorities.py`: a callback whose signature changed would
//! still link, so only an end-to-end run proves it.
//!
//! `unsafe_code` is denied crate-wide and allowed for this module only (`mod ffi` in lib.rs).

use std::any::Any;
use std::ffi::{c_char, c_void};
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::Arc;

use crate::config::FilterConfig;
use crate::filter::{self, Stream};
use crate::headers::HeaderBlock;

// ---------------------------------------------------------------------------------------------
// ABI types
// ---------------------------------------------------------------------------------------------

/// `envoy_dynamic_module_type_envoy_buffer`: bytes owned by Envoy.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct EnvoyBuffer {
    ptr: *const u8,
    length: usize,
}

/// `envoy_dynamic_module_type_module_buffer`: bytes owned by the module. A null `ptr` is "no
/// value" (`http_set_header` then removes the header).
#[repr(C)]
#[derive(Clone, Copy)]
struct ModuleBuffer {
    ptr: *const u8,
    length: usize,
}

impl ModuleBuffer {
    const NULL: ModuleBuffer = ModuleBuffer {
        ptr: ptr::null(),
        length: 0,
    };

    fn of(bytes: &[u8]) -> ModuleBuffer {
        ModuleBuffer {
            ptr: bytes.as_ptr(),
            length: bytes.len(),
        }
    }
}

/// `envoy_dynamic_module_type_envoy_http_header`: a header in Envoy's map.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct EnvoyHttpHeader {
    key_ptr: *const u8,
    key_length: usize,
    value_ptr: *const u8,
    value_length: usize,
}

/// `envoy_dynamic_module_type_module_http_header`: a header owned by the module.
#[repr(C)]
struct ModuleHttpHeader {
    key_ptr: *const u8,
    key_length: usize,
    value_ptr: *const u8,
    value_length: usize,
}

/// `envoy_dynamic_module_type_http_header_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum HeaderMap {
    RequestHeaders = 0,
    ResponseHeaders = 2,
}

/// `envoy_dynamic_module_type_log_level` (Trace 0, Debug 1, Info 2, ... Critical 5).
#[derive(Clone, Copy, Debug)]
#[repr(u32)]
pub(crate) enum LogLevel {
    Info = 2,
    Warn = 3,
    Error = 4,
}

/// `envoy_dynamic_module_type_on_http_filter_{request,response}_headers_status`
/// (`FilterHeadersStatus`: Continue 0, StopIteration 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum HeadersStatus {
    Continue = 0,
    StopIteration = 1,
}

/// Body hooks: `FilterDataStatus` Continue.
const BODY_CONTINUE: u32 = 0;
/// Trailers hooks: `FilterTrailersStatus` Continue.
const TRAILERS_CONTINUE: u32 = 0;
/// `envoy_dynamic_module_type_metrics_result_Success`.
const METRICS_SUCCESS: u32 = 0;

/// A counter defined by a filter config (Envoy's id, valid with that config's streams).
#[derive(Clone, Copy, Debug)]
pub(crate) struct CounterId(usize);

/// A histogram defined by a filter config.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HistogramId(usize);

// ---------------------------------------------------------------------------------------------
// Callbacks (defined by Envoy)
// ---------------------------------------------------------------------------------------------

extern "C" {
    fn envoy_dynamic_module_callback_log(level: u32, message: ModuleBuffer);

    fn envoy_dynamic_module_callback_http_get_headers_size(filter: *mut c_void, map: u32) -> usize;
    /// Fills `out` with `http_get_headers_size` entries pointing into Envoy's map.
    fn envoy_dynamic_module_callback_http_get_headers(
        filter: *mut c_void,
        map: u32,
        out: *mut EnvoyHttpHeader,
    ) -> bool;
    /// Replaces every value of `key` with `value`; a null `value` removes the header.
    fn envoy_dynamic_module_callback_http_set_header(
        filter: *mut c_void,
        map: u32,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    /// Appends one value of `key`.
    fn envoy_dynamic_module_callback_http_add_header(
        filter: *mut c_void,
        map: u32,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_clear_route_cache(filter: *mut c_void);
    fn envoy_dynamic_module_callback_http_send_response(
        filter: *mut c_void,
        status: u32,
        headers: *const ModuleHttpHeader,
        headers_count: usize,
        body: ModuleBuffer,
        details: ModuleBuffer,
    );

    fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        config: *mut c_void,
        name: ModuleBuffer,
        label_names: *const ModuleBuffer,
        label_names_count: usize,
        id_out: *mut usize,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_define_histogram(
        config: *mut c_void,
        name: ModuleBuffer,
        label_names: *const ModuleBuffer,
        label_names_count: usize,
        id_out: *mut usize,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_increment_counter(
        filter: *mut c_void,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_count: usize,
        value: u64,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_record_histogram_value(
        filter: *mut c_void,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_count: usize,
        value: u64,
    ) -> u32;
}

/// Most labels a stat of this module has.
const MAX_LABELS: usize = 2;

/// Label buffers for a metrics call, without allocating; `None` beyond [`MAX_LABELS`].
fn label_buffers(labels: &[&str]) -> Option<[ModuleBuffer; MAX_LABELS]> {
    let mut out = [ModuleBuffer::NULL; MAX_LABELS];
    if labels.len() > MAX_LABELS {
        return None;
    }
    for (slot, label) in out.iter_mut().zip(labels) {
        *slot = ModuleBuffer::of(label.as_bytes());
    }
    Some(out)
}

/// Envoy's log, `dynamic_modules` logger (shown at Envoy's `--log-level` or the logger's own).
pub(crate) fn log(level: LogLevel, message: &str) {
    // SAFETY: the buffer is valid for the call; Envoy copies the message.
    unsafe { envoy_dynamic_module_callback_log(level as u32, ModuleBuffer::of(message.as_bytes())) }
}

/// Bytes of an Envoy buffer, empty for a null pointer.
///
/// # Safety
/// `ptr` must be null or valid for `len` bytes for the returned lifetime.
unsafe fn envoy_bytes<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: per this function's contract.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

/// The stream's Envoy filter (`filter_envoy_ptr`), for the duration of one hook.
pub(crate) struct HttpFilter<'hook> {
    ptr: *mut c_void,
    _hook: PhantomData<&'hook mut ()>,
}

impl HttpFilter<'_> {
    /// A copy of the request headers, in Envoy's order.
    pub(crate) fn request_headers(&self) -> HeaderBlock {
        let map = HeaderMap::RequestHeaders as u32;
        // SAFETY: `ptr` is the filter Envoy passed to the running hook.
        let count = unsafe { envoy_dynamic_module_callback_http_get_headers_size(self.ptr, map) };
        if count == 0 {
            return HeaderBlock::default();
        }
        let empty = EnvoyHttpHeader {
            key_ptr: ptr::null(),
            key_length: 0,
            value_ptr: ptr::null(),
            value_length: 0,
        };
        let mut views = vec![empty; count];
        // SAFETY: `views` has room for the `count` entries Envoy writes (the map cannot change
        // between the two calls: same thread, no setter in between).
        if !unsafe {
            envoy_dynamic_module_callback_http_get_headers(self.ptr, map, views.as_mut_ptr())
        } {
            return HeaderBlock::default();
        }
        let bytes = views.iter().map(|h| h.key_length + h.value_length).sum();
        let mut block = HeaderBlock::with_capacity(count, bytes);
        for h in &views {
            // SAFETY: the views point into Envoy's header map, unchanged until this hook sets a
            // header; they are copied here, before any setter runs.
            let (key, value) = unsafe {
                (
                    envoy_bytes(h.key_ptr, h.key_length),
                    envoy_bytes(h.value_ptr, h.value_length),
                )
            };
            block.push(key, value);
        }
        block
    }

    /// Replaces every value of `name` with `value`.
    pub(crate) fn set_header(&mut self, map: HeaderMap, name: &str, value: &[u8]) -> bool {
        // SAFETY: `ptr` is the running hook's filter; the buffers outlive the call (Envoy copies).
        unsafe {
            envoy_dynamic_module_callback_http_set_header(
                self.ptr,
                map as u32,
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer::of(value),
            )
        }
    }

    /// Appends a value of `name`.
    pub(crate) fn add_header(&mut self, map: HeaderMap, name: &str, value: &[u8]) -> bool {
        // SAFETY: as `set_header`.
        unsafe {
            envoy_dynamic_module_callback_http_add_header(
                self.ptr,
                map as u32,
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer::of(value),
            )
        }
    }

    /// Removes every value of `name`.
    pub(crate) fn remove_header(&mut self, map: HeaderMap, name: &str) -> bool {
        // SAFETY: as `set_header`; the null value means "remove".
        unsafe {
            envoy_dynamic_module_callback_http_set_header(
                self.ptr,
                map as u32,
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer::NULL,
            )
        }
    }

    /// Makes Envoy pick the route again from the (changed) request headers.
    pub(crate) fn clear_route_cache(&mut self) {
        // SAFETY: `ptr` is the running hook's filter.
        unsafe { envoy_dynamic_module_callback_http_clear_route_cache(self.ptr) }
    }

    /// A local reply; the hook must then return StopIteration.
    pub(crate) fn send_response<K: AsRef<str>, V: AsRef<str>>(
        &mut self,
        status: u16,
        headers: &[(K, V)],
        body: &[u8],
        details: &str,
    ) {
        let headers: Vec<ModuleHttpHeader> = headers
            .iter()
            .map(|(k, v)| {
                let (k, v) = (k.as_ref(), v.as_ref());
                ModuleHttpHeader {
                    key_ptr: k.as_ptr(),
                    key_length: k.len(),
                    value_ptr: v.as_ptr(),
                    value_length: v.len(),
                }
            })
            .collect();
        // SAFETY: `ptr` is the running hook's filter; headers, body and details outlive the call.
        unsafe {
            envoy_dynamic_module_callback_http_send_response(
                self.ptr,
                u32::from(status),
                headers.as_ptr(),
                headers.len(),
                ModuleBuffer::of(body),
                ModuleBuffer::of(details.as_bytes()),
            );
        }
    }

    /// Adds `by` to a counter of this stream's filter config.
    pub(crate) fn increment_counter(&mut self, id: CounterId, labels: &[&str], by: u64) -> bool {
        let Some(bufs) = label_buffers(labels) else {
            return false;
        };
        // SAFETY: `ptr` is the running hook's filter; `labels.len()` buffers are valid.
        let result = unsafe {
            envoy_dynamic_module_callback_http_filter_increment_counter(
                self.ptr,
                id.0,
                bufs.as_ptr(),
                labels.len(),
                by,
            )
        };
        result == METRICS_SUCCESS
    }

    /// Records a value in a histogram of this stream's filter config.
    pub(crate) fn record_histogram(
        &mut self,
        id: HistogramId,
        labels: &[&str],
        value: u64,
    ) -> bool {
        let Some(bufs) = label_buffers(labels) else {
            return false;
        };
        // SAFETY: as `increment_counter`.
        let result = unsafe {
            envoy_dynamic_module_callback_http_filter_record_histogram_value(
                self.ptr,
                id.0,
                bufs.as_ptr(),
                labels.len(),
                value,
            )
        };
        result == METRICS_SUCCESS
    }
}

/// The filter config being created (`filter_config_envoy_ptr`), during `http_filter_config_new`.
pub(crate) struct ConfigHandle<'hook> {
    ptr: *mut c_void,
    _hook: PhantomData<&'hook mut ()>,
}

impl ConfigHandle<'_> {
    /// Defines a counter with these label names; Envoy's error code otherwise.
    pub(crate) fn define_counter(&mut self, name: &str, labels: &[&str]) -> Result<CounterId, u32> {
        let bufs = label_buffers(labels).ok_or(u32::MAX)?;
        let mut id = 0usize;
        // SAFETY: `ptr` is the config Envoy passed to the running hook; buffers are valid for
        // the call; `id` is a valid out-pointer.
        let result = unsafe {
            envoy_dynamic_module_callback_http_filter_config_define_counter(
                self.ptr,
                ModuleBuffer::of(name.as_bytes()),
                bufs.as_ptr(),
                labels.len(),
                &mut id,
            )
        };
        if result == METRICS_SUCCESS {
            Ok(CounterId(id))
        } else {
            Err(result)
        }
    }

    /// Defines a histogram with these label names; Envoy's error code otherwise.
    pub(crate) fn define_histogram(
        &mut self,
        name: &str,
        labels: &[&str],
    ) -> Result<HistogramId, u32> {
        let bufs = label_buffers(labels).ok_or(u32::MAX)?;
        let mut id = 0usize;
        // SAFETY: as `define_counter`.
        let result = unsafe {
            envoy_dynamic_module_callback_http_filter_config_define_histogram(
                self.ptr,
                ModuleBuffer::of(name.as_bytes()),
                bufs.as_ptr(),
                labels.len(),
                &mut id,
            )
        };
        if result == METRICS_SUCCESS {
            Ok(HistogramId(id))
        } else {
            Err(result)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Panic containment
// ---------------------------------------------------------------------------------------------

/// The text of a panic payload.
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(non-string panic payload)"
    }
}

/// Runs a hook body that has no stream to answer on; a panic is logged and `fallback` returned.
fn guard<R>(hook: &'static str, fallback: R, body: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(payload) => {
            let message = panic_message(&*payload);
            // A panic while logging is swallowed: nothing may unwind into Envoy.
            let _ = catch_unwind(AssertUnwindSafe(|| {
                log(
                    LogLevel::Error,
                    &format!("meshroute: panic in {hook}: {message}"),
                );
            }));
            fallback
        }
    }
}

/// Runs a stream hook body. A panic becomes `filter::on_panic` (error log, panic counter, 500
/// local reply, StopIteration); if that panics too, StopIteration.
fn stream_hook(
    hook: &'static str,
    filter_envoy_ptr: *mut c_void,
    filter_module_ptr: *const c_void,
    body: impl FnOnce(&mut HttpFilter<'_>, &mut Stream) -> HeadersStatus,
) -> u32 {
    let mut envoy = HttpFilter {
        ptr: filter_envoy_ptr,
        _hook: PhantomData,
    };
    if filter_module_ptr.is_null() {
        // No stream (never returned by http_filter_new): fail closed rather than let the
        // request through undecided.
        return guard(hook, HeadersStatus::StopIteration, || {
            filter::on_missing_stream(&mut envoy, hook)
        }) as u32;
    }
    // SAFETY: the pointer is the `Box<Stream>` from `http_filter_new`, alive until
    // `http_filter_destroy`; Envoy calls one stream's hooks on one worker thread, one at a time.
    let stream = unsafe { &mut *filter_module_ptr.cast_mut().cast::<Stream>() };
    let status = match catch_unwind(AssertUnwindSafe(|| body(&mut envoy, stream))) {
        Ok(status) => status,
        Err(payload) => {
            let message = panic_message(&*payload);
            catch_unwind(AssertUnwindSafe(|| {
                filter::on_panic(&mut envoy, stream, hook, message)
            }))
            .unwrap_or(HeadersStatus::StopIteration)
        }
    };
    status as u32
}

// ---------------------------------------------------------------------------------------------
// Hooks (called by Envoy)
// ---------------------------------------------------------------------------------------------

#[no_mangle]
pub(crate) extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    // NULL (only after a panic, which cannot happen here) makes Envoy refuse the module.
    guard("program_init", ptr::null(), || crate::ABI_VERSION.as_ptr())
}

#[no_mangle]
pub(crate) extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    filter_config_envoy_ptr: *mut c_void,
    name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    guard("http_filter_config_new", ptr::null(), || {
        // SAFETY: Envoy's buffers are valid for the duration of this call.
        let (name, config) = unsafe {
            (
                envoy_bytes(name.ptr, name.length),
                envoy_bytes(config.ptr, config.length),
            )
        };
        let mut handle = ConfigHandle {
            ptr: filter_config_envoy_ptr,
            _hook: PhantomData,
        };
        match filter::new_filter_config(&mut handle, name, config) {
            Some(config) => Arc::into_raw(config).cast(),
            None => ptr::null(),
        }
    })
}

#[no_mangle]
pub(crate) extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(
    filter_config_ptr: *const c_void,
) {
    if filter_config_ptr.is_null() {
        return;
    }
    // SAFETY: the pointer came from `Arc::into_raw` in `http_filter_config_new`; Envoy destroys
    // a config once. Streams hold their own reference, so the config outlives them.
    let config = unsafe { Arc::from_raw(filter_config_ptr.cast::<FilterConfig>()) };
    guard("http_filter_config_destroy", (), move || drop(config));
}

#[no_mangle]
pub(crate) extern "C" fn envoy_dynamic_module_on_http_filter_new(
    filter_config_ptr: *const c_void,
    _filter_envoy_ptr: *mut c_void,
) -> *const c_void {
    if filter_config_ptr.is_null() {
        return ptr::null();
    }
    let config_ptr = filter_config_ptr.cast::<FilterConfig>();
    // SAFETY: the pointer came from `Arc::into_raw` and its config is alive while Envoy creates
    // streams from it; the stream takes a reference of its own.
    let config = unsafe {
        Arc::increment_strong_count(config_ptr);
        Arc::from_raw(config_ptr)
    };
    guard("http_filter_new", ptr::null(), move || {
        Box::into_raw(Box::new(Stream::new(config)))
            .cast_const()
            .cast()
    })
}

#[no_mangle]
pub(crate) extern "C" fn envoy_dynamic_module_on_http_filter_destroy(
    filter_module_ptr: *const c_void,
) {
    if filter_module_ptr.is_null() {
        return;
    }
    // SAFETY: the pointer came from `Box::into_raw` in `http_filter_new`; Envoy destroys a
    // stream once, after its last hook.
    let stream = unsafe { Box::from_raw(filter_module_ptr.cast_mut().cast::<Stream>()) };
    guard("http_filter_destroy", (), move || drop(stream));
}

#[no_mangle]
pub(crate) extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    filter_envoy_ptr: *mut c_void,
    filter_module_ptr: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    stream_hook(
        "request_headers",
        filter_envoy_ptr,
        filter_module_ptr,
        filter::request_headers,
    )
}

#[no_mangle]
pub(crate) extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    filter_envoy_ptr: *mut c_void,
    filter_module_ptr: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    if filter_module_ptr.is_null() {
        return HeadersStatus::Continue as u32;
    }
    stream_hook(
        "response_headers",
        filter_envoy_ptr,
        filter_module_ptr,
        filter::response_headers,
    )
}

#[no_mangle]
pub(crate) extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    _filter_envoy_ptr: *mut c_void,
    _filter_module_ptr: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    guard("request_body", BODY_CONTINUE, || BODY_CONTINUE)
}

#[no_mangle]
pub(crate) extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    _filter_envoy_ptr: *mut c_void,
    _filter_module_ptr: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    guard("response_body", BODY_CONTINUE, || BODY_CONTINUE)
}

#[no_mangle]
pub(crate) extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    _filter_envoy_ptr: *mut c_void,
    _filter_module_ptr: *const c_void,
) -> u32 {
    guard("request_trailers", TRAILERS_CONTINUE, || TRAILERS_CONTINUE)
}

#[no_mangle]
pub(crate) extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _filter_envoy_ptr: *mut c_void,
    _filter_module_ptr: *const c_void,
) -> u32 {
    guard("response_trailers", TRAILERS_CONTINUE, || TRAILERS_CONTINUE)
}

#[no_mangle]
pub(crate) extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    _filter_envoy_ptr: *mut c_void,
    _filter_module_ptr: *const c_void,
) {
    guard("stream_complete", (), || ());
}

// The module starts no callout, stream or scheduled event and ignores flow control: these hooks
// are required by Envoy 1.40 but never have work to do.

#[no_mangle]
pub(crate) extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    _filter_envoy_ptr: *mut c_void,
    _filter_module_ptr: *const c_void,
    _callout_id: u64,
    _result: u32,
    _headers: *const EnvoyHttpHeader,
    _headers_size: usize,
    _body_chunks: *const EnvoyBuffer,
    _body_chunks_size: usize,
) {
    guard("http_callout_done", (), || ());
}

#[no_mangle]
pub(crate) extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _filter_envoy_ptr: *mut c_void,
    _filter_module_ptr: *const c_void,
    _stream_id: u64,
    _headers: *const EnvoyHttpHeader,
    _headers_size: usize,
    _end_stream: bool,
) {
    guard("http_stream_headers", (), || ());
}

#[no_mangle]
pub(crate) extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _filter_envoy_ptr: *mut c_void,
    _filter_module_ptr: *const c_void,
    _stream_id: u64,
    _data: *const EnvoyBuffer,
    _data_count: usize,
    _end_stream: bool,
) {
    guard("http_stream_data", (), || ());
}

#[no_mangle]
pub(crate) extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _filter_envoy_ptr: *mut c_void,
    _filter_module_ptr: *const c_void,
    _stream_id: u64,
    _trailers: *const EnvoyHttpHeader,
    _trailers_size: usize,
) {
    guard("http_stream_trailers", (), || ());
}

#[no_mangle]
pub(crate) extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _filter_envoy_ptr: *mut c_void,
    _filter_module_ptr: *const c_void,
    _stream_id: u64,
) {
    guard("http_stream_complete", (), || ());
}

#[no_mangle]
pub(crate) extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _filter_envoy_ptr: *mut c_void,
    _filter_module_ptr: *const c_void,
    _stream_id: u64,
    _reason: u32,
) {
    guard("http_stream_reset", (), || ());
}

#[no_mangle]
pub(crate) extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    _filter_envoy_ptr: *mut c_void,
    _filter_module_ptr: *const c_void,
    _event_id: u64,
) {
    guard("scheduled", (), || ());
}

#[no_mangle]
pub(crate) extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _filter_envoy_ptr: *mut c_void,
    _filter_module_ptr: *const c_void,
) {
    guard("downstream_above_write_buffer_high_watermark", (), || ());
}

#[no_mangle]
pub(crate) extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _filter_envoy_ptr: *mut c_void,
    _filter_module_ptr: *const c_void,
) {
    guard("downstream_below_write_buffer_low_watermark", (), || ());
}

// ---------------------------------------------------------------------------------------------
// Load-balancing policy (`envoy.load_balancing_policies.dynamic_modules`)
// ---------------------------------------------------------------------------------------------
//
// Envoy 1.40 resolves these six hooks when a cluster's `load_balancing_policy` names the module
// (`lb_config_new` per cluster config on the main thread, `lb_new` per worker, the others on that
// worker) and calls the `envoy_dynamic_module_callback_lb_*` callbacks below, all defined by the
// 1.40 binary (`nm -D --defined-only`). `choose_host` answers (priority, index into that
// priority's healthy hosts); `false` means no host, and the router answers 503.

/// `envoy_dynamic_module_type_host_stat_RqActive`: the per-host `rq_active` gauge (the enum lists
/// the counters cx_connect_fail, cx_total, rq_error, rq_success, rq_timeout, rq_total, then the
/// gauges cx_active, rq_active).
const HOST_STAT_RQ_ACTIVE: u32 = 7;
/// `envoy_dynamic_module_type_host_stat_RqTotal`: the per-host `rq_total` counter (PEAK_EWMA's
/// latency estimate, with `rq_active`).
const HOST_STAT_RQ_TOTAL: u32 = 5;

/// The balancers' clock: time since the first pick of the process (monotonic).
fn lb_now() -> std::time::Duration {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(std::time::Instant::now).elapsed()
}

/// A counter defined by a balancer config (Envoy's id, valid with that config).
#[derive(Clone, Copy, Debug)]
pub(crate) struct LbCounterId(usize);

extern "C" {
    fn envoy_dynamic_module_callback_lb_config_define_counter(
        config: *mut c_void,
        name: ModuleBuffer,
        label_names: *const ModuleBuffer,
        label_names_count: usize,
        id_out: *mut usize,
    ) -> u32;
    fn envoy_dynamic_module_callback_lb_config_increment_counter(
        config: *mut c_void,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_count: usize,
        value: u64,
    ) -> u32;

    fn envoy_dynamic_module_callback_lb_get_priority_set_size(lb: *mut c_void) -> usize;
    fn envoy_dynamic_module_callback_lb_get_healthy_hosts_count(
        lb: *mut c_void,
        priority: u32,
    ) -> usize;
    fn envoy_dynamic_module_callback_lb_get_healthy_host_address(
        lb: *mut c_void,
        priority: u32,
        index: usize,
        out: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_lb_get_healthy_host_weight(
        lb: *mut c_void,
        priority: u32,
        index: usize,
    ) -> u32;
    fn envoy_dynamic_module_callback_lb_get_hosts_count(lb: *mut c_void, priority: u32) -> usize;
    fn envoy_dynamic_module_callback_lb_get_host_address(
        lb: *mut c_void,
        priority: u32,
        index: usize,
        out: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_lb_get_host_stat(
        lb: *mut c_void,
        priority: u32,
        index: usize,
        stat: u32,
    ) -> u64;
    fn envoy_dynamic_module_callback_lb_get_host_locality(
        lb: *mut c_void,
        priority: u32,
        index: usize,
        region: *mut EnvoyBuffer,
        zone: *mut EnvoyBuffer,
        sub_zone: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_lb_get_locality_count(lb: *mut c_void, priority: u32)
        -> usize;
    fn envoy_dynamic_module_callback_lb_get_locality_host_count(
        lb: *mut c_void,
        priority: u32,
        locality: usize,
    ) -> usize;
    fn envoy_dynamic_module_callback_lb_get_locality_host_address(
        lb: *mut c_void,
        priority: u32,
        locality: usize,
        index: usize,
        out: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_lb_get_locality_weight(
        lb: *mut c_void,
        priority: u32,
        locality: usize,
    ) -> u32;

    fn envoy_dynamic_module_callback_lb_context_compute_hash_key(
        context: *mut c_void,
        hash_out: *mut u64,
    ) -> bool;
    fn envoy_dynamic_module_callback_lb_context_get_downstream_header(
        context: *mut c_void,
        key: ModuleBuffer,
        out: *mut EnvoyBuffer,
        index: usize,
        count_out: *mut usize,
    ) -> bool;
    fn envoy_dynamic_module_callback_lb_context_get_host_selection_retry_count(
        context: *mut c_void,
    ) -> u32;
    fn envoy_dynamic_module_callback_lb_context_should_select_another_host(
        lb: *mut c_void,
        context: *mut c_void,
        priority: u32,
        index: usize,
    ) -> bool;
}

/// Where a balancer config's counters go: Envoy's `DynamicModuleLbConfig`, which outlives every
/// balancer created from it (each holds a reference to it), hence every `Arc<LbConfig>`.
#[derive(Debug)]
pub(crate) struct LbCounters {
    ptr: *mut c_void,
}

// SAFETY: the pointer is only used for `lb_config_increment_counter` on a counter without labels,
// which adds to an Envoy counter (atomic) and touches nothing else: callable from any worker.
unsafe impl Send for LbCounters {}
// SAFETY: as for `Send`; `&LbCounters` allows nothing more.
unsafe impl Sync for LbCounters {}

impl LbCounters {
    /// Adds `by` to a counter without labels (labelled increments intern the label values in a
    /// pool that is neither thread-safe nor bounded, so the module defines none).
    pub(crate) fn increment(&self, id: LbCounterId, by: u64) -> bool {
        // SAFETY: `ptr` is the live config (see the type); no label buffers.
        let result = unsafe {
            envoy_dynamic_module_callback_lb_config_increment_counter(
                self.ptr,
                id.0,
                ptr::null(),
                0,
                by,
            )
        };
        result == METRICS_SUCCESS
    }
}

/// The balancer config being created (`lb_config_envoy_ptr`), during `lb_config_new`.
pub(crate) struct LbConfigHandle<'hook> {
    ptr: *mut c_void,
    _hook: PhantomData<&'hook mut ()>,
}

impl LbConfigHandle<'_> {
    /// Defines a counter without labels; Envoy's error code otherwise.
    pub(crate) fn define_counter(&mut self, name: &str) -> Result<LbCounterId, u32> {
        let mut id = 0usize;
        // SAFETY: `ptr` is the config Envoy passed to the running hook (stats can only be defined
        // there); the name buffer is valid for the call; `id` is a valid out-pointer.
        let result = unsafe {
            envoy_dynamic_module_callback_lb_config_define_counter(
                self.ptr,
                ModuleBuffer::of(name.as_bytes()),
                ptr::null(),
                0,
                &mut id,
            )
        };
        if result == METRICS_SUCCESS {
            Ok(LbCounterId(id))
        } else {
            Err(result)
        }
    }

    /// The handle the config keeps for its counters.
    pub(crate) fn counters(&self) -> LbCounters {
        LbCounters { ptr: self.ptr }
    }
}

/// Bytes of an Envoy buffer filled by a callback, as text (addresses are ASCII).
///
/// # Safety
/// `buffer` must be null or valid for the duration of the current hook.
unsafe fn envoy_text(buffer: EnvoyBuffer) -> Option<String> {
    // SAFETY: per this function's contract.
    let bytes = unsafe { envoy_bytes(buffer.ptr, buffer.length) };
    if bytes.is_empty() {
        return None;
    }
    Some(String::from_utf8_lossy(bytes).into_owned())
}

const EMPTY_BUFFER: EnvoyBuffer = EnvoyBuffer {
    ptr: ptr::null(),
    length: 0,
};

/// The cluster's hosts as this worker's Envoy balancer (`lb_envoy_ptr`) sees them, for the
/// duration of one hook.
pub(crate) struct LbHosts<'hook> {
    ptr: *mut c_void,
    _hook: PhantomData<&'hook ()>,
}

impl crate::lb::Hosts for LbHosts<'_> {
    fn priorities(&self) -> usize {
        // SAFETY: `ptr` is the balancer Envoy passed to the running hook.
        unsafe { envoy_dynamic_module_callback_lb_get_priority_set_size(self.ptr) }
    }

    fn healthy_count(&self, priority: u32) -> usize {
        // SAFETY: as `priorities`; Envoy checks the priority.
        unsafe { envoy_dynamic_module_callback_lb_get_healthy_hosts_count(self.ptr, priority) }
    }

    fn healthy_host(&self, priority: u32, index: usize) -> Option<(String, u32)> {
        let mut out = EMPTY_BUFFER;
        // SAFETY: as `priorities`; Envoy checks the indexes and fills `out` with a view of the
        // host's address, valid during the hook; it is copied at once.
        let (found, weight) = unsafe {
            let found = envoy_dynamic_module_callback_lb_get_healthy_host_address(
                self.ptr, priority, index, &mut out,
            );
            let weight =
                envoy_dynamic_module_callback_lb_get_healthy_host_weight(self.ptr, priority, index);
            (found, weight)
        };
        // SAFETY: `out` was filled by Envoy in this hook (or left empty).
        let address = if found {
            unsafe { envoy_text(out) }
        } else {
            None
        };
        address.map(|a| (a, weight))
    }

    fn host_count(&self, priority: u32) -> usize {
        // SAFETY: as `priorities`.
        unsafe { envoy_dynamic_module_callback_lb_get_hosts_count(self.ptr, priority) }
    }

    fn host_address(&self, priority: u32, index: usize) -> Option<String> {
        let mut out = EMPTY_BUFFER;
        // SAFETY: as `healthy_host`.
        let found = unsafe {
            envoy_dynamic_module_callback_lb_get_host_address(self.ptr, priority, index, &mut out)
        };
        // SAFETY: `out` was filled by Envoy in this hook (or left empty).
        found.then(|| unsafe { envoy_text(out) }).flatten()
    }

    fn active_requests(&self, priority: u32, index: usize) -> u64 {
        // SAFETY: as `priorities`; Envoy checks the indexes (0 when out of range).
        unsafe {
            envoy_dynamic_module_callback_lb_get_host_stat(
                self.ptr,
                priority,
                index,
                HOST_STAT_RQ_ACTIVE,
            )
        }
    }

    fn requests_total(&self, priority: u32, index: usize) -> u64 {
        // SAFETY: as `active_requests`.
        unsafe {
            envoy_dynamic_module_callback_lb_get_host_stat(
                self.ptr,
                priority,
                index,
                HOST_STAT_RQ_TOTAL,
            )
        }
    }

    fn host_locality(&self, priority: u32, index: usize) -> Option<meshroute_lb::Locality> {
        let (mut region, mut zone, mut sub_zone) = (EMPTY_BUFFER, EMPTY_BUFFER, EMPTY_BUFFER);
        // SAFETY: as `healthy_host`: Envoy checks the indexes and fills the three buffers with
        // views of the host's locality strings, valid during the hook; copied at once.
        let found = unsafe {
            envoy_dynamic_module_callback_lb_get_host_locality(
                self.ptr,
                priority,
                index,
                &mut region,
                &mut zone,
                &mut sub_zone,
            )
        };
        // SAFETY: the buffers were filled by Envoy in this hook (or left empty).
        let text = |b: EnvoyBuffer| unsafe { envoy_text(b) }.unwrap_or_default();
        found.then(|| meshroute_lb::Locality::new(text(region), text(zone), text(sub_zone)))
    }

    fn locality_count(&self, priority: u32) -> usize {
        // SAFETY: as `priorities`; Envoy checks the priority (0 when out of range).
        unsafe { envoy_dynamic_module_callback_lb_get_locality_count(self.ptr, priority) }
    }

    fn locality_healthy_count(&self, priority: u32, locality: usize) -> usize {
        // SAFETY: as `locality_count`; Envoy checks the indexes.
        unsafe {
            envoy_dynamic_module_callback_lb_get_locality_host_count(self.ptr, priority, locality)
        }
    }

    fn locality_healthy_address(
        &self,
        priority: u32,
        locality: usize,
        index: usize,
    ) -> Option<String> {
        let mut out = EMPTY_BUFFER;
        // SAFETY: as `host_address`.
        let found = unsafe {
            envoy_dynamic_module_callback_lb_get_locality_host_address(
                self.ptr, priority, locality, index, &mut out,
            )
        };
        // SAFETY: `out` was filled by Envoy in this hook (or left empty).
        found.then(|| unsafe { envoy_text(out) }).flatten()
    }

    fn locality_weight(&self, priority: u32, locality: usize) -> u32 {
        // SAFETY: as `locality_count`.
        unsafe {
            envoy_dynamic_module_callback_lb_get_locality_weight(self.ptr, priority, locality)
        }
    }
}

/// The request being balanced (`context_envoy_ptr`, never null here), during `choose_host`.
pub(crate) struct LbRequest<'hook> {
    lb: *mut c_void,
    context: *mut c_void,
    _hook: PhantomData<&'hook ()>,
}

impl crate::lb::Request for LbRequest<'_> {
    fn hash_key(&self) -> Option<u64> {
        let mut hash = 0u64;
        // SAFETY: `context` is the non-null context of the running `choose_host`.
        let found = unsafe {
            envoy_dynamic_module_callback_lb_context_compute_hash_key(self.context, &mut hash)
        };
        found.then_some(hash)
    }

    fn header(&self, name: &str) -> Option<Vec<u8>> {
        let mut out = EMPTY_BUFFER;
        // SAFETY: as `hash_key`; the key buffer is valid for the call; the count is optional.
        let found = unsafe {
            envoy_dynamic_module_callback_lb_context_get_downstream_header(
                self.context,
                ModuleBuffer::of(name.as_bytes()),
                &mut out,
                0,
                ptr::null_mut(),
            )
        };
        // SAFETY: `out` views Envoy's header map during this hook; copied at once.
        found.then(|| unsafe { envoy_bytes(out.ptr, out.length) }.to_vec())
    }

    fn retry_count(&self) -> u32 {
        // SAFETY: as `hash_key`.
        unsafe {
            envoy_dynamic_module_callback_lb_context_get_host_selection_retry_count(self.context)
        }
    }

    fn reject(&self, priority: u32, index: usize) -> bool {
        // SAFETY: `lb` and `context` are the running `choose_host`'s; Envoy checks the indexes.
        unsafe {
            envoy_dynamic_module_callback_lb_context_should_select_another_host(
                self.lb,
                self.context,
                priority,
                index,
            )
        }
    }
}

#[no_mangle]
pub(crate) extern "C" fn envoy_dynamic_module_on_lb_config_new(
    lb_config_envoy_ptr: *mut c_void,
    name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    guard("lb_config_new", ptr::null(), || {
        // SAFETY: Envoy's buffers are valid for the duration of this call.
        let (name, config) = unsafe {
            (
                envoy_bytes(name.ptr, name.length),
                envoy_bytes(config.ptr, config.length),
            )
        };
        let mut handle = LbConfigHandle {
            ptr: lb_config_envoy_ptr,
            _hook: PhantomData,
        };
        match crate::lb::new_config(&mut handle, name, config) {
            Some(config) => Arc::into_raw(config).cast(),
            None => ptr::null(),
        }
    })
}

#[no_mangle]
pub(crate) extern "C" fn envoy_dynamic_module_on_lb_config_destroy(
    config_module_ptr: *const c_void,
) {
    if config_module_ptr.is_null() {
        return;
    }
    // SAFETY: the pointer came from `Arc::into_raw` in `lb_config_new`; Envoy destroys a config
    // once. Each balancer holds its own reference.
    let config = unsafe { Arc::from_raw(config_module_ptr.cast::<crate::lb::LbConfig>()) };
    guard("lb_config_destroy", (), move || drop(config));
}

#[no_mangle]
pub(crate) extern "C" fn envoy_dynamic_module_on_lb_new(
    config_module_ptr: *const c_void,
    lb_envoy_ptr: *mut c_void,
) -> *const c_void {
    if config_module_ptr.is_null() {
        return ptr::null();
    }
    let config_ptr = config_module_ptr.cast::<crate::lb::LbConfig>();
    // SAFETY: the pointer came from `Arc::into_raw` and its config is alive while Envoy creates
    // balancers from it; the balancer takes a reference of its own.
    let config = unsafe {
        Arc::increment_strong_count(config_ptr);
        Arc::from_raw(config_ptr)
    };
    let hosts = LbHosts {
        ptr: lb_envoy_ptr,
        _hook: PhantomData,
    };
    guard("lb_new", ptr::null(), move || {
        Box::into_raw(Box::new(crate::lb::new_balancer(config, &hosts, lb_now())))
            .cast_const()
            .cast()
    })
}

#[no_mangle]
pub(crate) extern "C" fn envoy_dynamic_module_on_lb_destroy(lb_module_ptr: *const c_void) {
    if lb_module_ptr.is_null() {
        return;
    }
    // SAFETY: the pointer came from `Box::into_raw` in `lb_new`; Envoy destroys a balancer once,
    // after its last hook.
    let lb = unsafe { Box::from_raw(lb_module_ptr.cast_mut().cast::<crate::lb::WorkerLb>()) };
    guard("lb_destroy", (), move || drop(lb));
}

/// The worker's balancer behind `lb_module_ptr`.
///
/// # Safety
/// `lb_module_ptr` must be non-null and come from `lb_new`, not yet destroyed; Envoy calls one
/// balancer's hooks on its own worker thread, one at a time.
unsafe fn worker_lb<'hook>(lb_module_ptr: *const c_void) -> &'hook mut crate::lb::WorkerLb {
    // SAFETY: per this function's contract.
    unsafe { &mut *lb_module_ptr.cast_mut().cast::<crate::lb::WorkerLb>() }
}

#[no_mangle]
pub(crate) extern "C" fn envoy_dynamic_module_on_lb_choose_host(
    lb_envoy_ptr: *mut c_void,
    lb_module_ptr: *const c_void,
    context_envoy_ptr: *mut c_void,
    result_priority: *mut u32,
    result_index: *mut u32,
) -> bool {
    if lb_module_ptr.is_null() || result_priority.is_null() || result_index.is_null() {
        return false;
    }
    // SAFETY: see `worker_lb`.
    let lb = unsafe { worker_lb(lb_module_ptr) };
    let hosts = LbHosts {
        ptr: lb_envoy_ptr,
        _hook: PhantomData,
    };
    let request = (!context_envoy_ptr.is_null()).then_some(LbRequest {
        lb: lb_envoy_ptr,
        context: context_envoy_ptr,
        _hook: PhantomData,
    });
    let now = lb_now();
    let chosen = match catch_unwind(AssertUnwindSafe(|| {
        lb.choose(&hosts, request.as_ref(), now)
    })) {
        Ok(chosen) => chosen,
        Err(payload) => {
            let message = panic_message(&*payload);
            let _ = catch_unwind(AssertUnwindSafe(|| {
                crate::lb::on_panic(lb, "lb_choose_host", message);
            }));
            None
        }
    };
    match chosen {
        Some((priority, index)) => {
            // SAFETY: Envoy's out-pointers, checked non-null above, valid for this call.
            unsafe {
                *result_priority = priority;
                *result_index = index;
            }
            true
        }
        None => false,
    }
}

#[no_mangle]
pub(crate) extern "C" fn envoy_dynamic_module_on_lb_on_host_membership_update(
    lb_envoy_ptr: *mut c_void,
    lb_module_ptr: *const c_void,
    hosts_added: usize,
    hosts_removed: usize,
) {
    if lb_module_ptr.is_null() {
        return;
    }
    // SAFETY: see `worker_lb`.
    let lb = unsafe { worker_lb(lb_module_ptr) };
    let hosts = LbHosts {
        ptr: lb_envoy_ptr,
        _hook: PhantomData,
    };
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| {
        crate::lb::membership_update(lb, &hosts, hosts_added, hosts_removed, lb_now());
    })) {
        let message = panic_message(&*payload);
        let _ = catch_unwind(AssertUnwindSafe(|| {
            crate::lb::on_panic(lb, "lb_on_host_membership_update", message);
        }));
    }
}

/// Unit tests run without Envoy: the callbacks the safe code can reach (a log line, a counter)
/// are defined here for the test binary only, doing nothing.
#[cfg(test)]
mod test_stubs {
    use super::ModuleBuffer;
    use std::ffi::c_void;

    #[no_mangle]
    extern "C" fn envoy_dynamic_module_callback_log(_level: u32, _message: ModuleBuffer) {}

    #[no_mangle]
    extern "C" fn envoy_dynamic_module_callback_lb_config_increment_counter(
        _config: *mut c_void,
        _id: usize,
        _label_values: *const ModuleBuffer,
        _label_values_count: usize,
        _value: u64,
    ) -> u32 {
        0
    }
}
