//! Waiting between retries, wherever the drivers run: tokio's timer natively, the
//! JavaScript runtime's `setTimeout` in WebAssembly (where tokio has no timer driver and
//! the browser's event loop drives the futures).

use std::time::Duration;

/// Waits `duration`.
#[cfg(not(target_family = "wasm"))]
pub(crate) async fn pause(duration: Duration) {
    tokio::time::sleep(duration).await;
}

/// Waits `duration`.
#[cfg(target_family = "wasm")]
pub(crate) async fn pause(duration: Duration) {
    use wasm_bindgen::prelude::*;

    #[wasm_bindgen]
    extern "C" {
        #[wasm_bindgen(js_name = setTimeout)]
        fn set_timeout(callback: &js_sys::Function, ms: f64) -> JsValue;
    }

    let ms = duration.as_secs_f64() * 1000.0;
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        set_timeout(&resolve, ms);
    });
    // One thread in WebAssembly: the wrapper's `Send` is never put to the test.
    let _ = send_wrapper::SendWrapper::new(wasm_bindgen_futures::JsFuture::from(promise)).await;
}
