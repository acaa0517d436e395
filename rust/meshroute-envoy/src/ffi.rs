//! Envoy's C ABI for HTTP-filter dynamic modules (Envoy 1.40, ABI `v0.2.0`): the only code in
//! the crate allowed to use `unsafe`.
//!
//! Why `unsafe` is allowed here: Envoy calls the module through exported `extern "C"` hooks
//! (`envoy_dynamic_module_on_*`, `#[no_mangle]`) with raw pointers, and the module calls Envoy
//! back through C functions (`envoy_dynamic_module_callback_*`) that the dynamic linker resolves
//! against the Envoy binary when it loads the module. Both directions are raw FFI. This module
//! keeps that boundary small and turns it into safe values for the rest of the crate:
//! - each hook rebuilds the module's own objects from the pointers it handed Envoy
//!   (`Arc<FilterConfig>`, `Box<Stream>`) and runs the safe body under `catch_unwind`;
//! - [`HttpFilter`] and [`ConfigHandle`] wrap the callbacks; they are created only here, for the
//!   duration of one hook (their lifetime parameter keeps them from escaping it);
//! - [`log`] is Envoy's logger.
//!
//! The declarations follow `source/extensions/dynamic_modules/abi/abi.h` (v0.2.0) and hold only
//! what the module uses. C enums are passed as `u32`, buffers as `{ptr, len}` structs by value.
//! Every callback declared below is defined by the Envoy 1.40 binary (checked with `nm -D`) and
//! is exercised by `tests/e2e/test_module_smoke.py`: a callback whose signature changed would
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
