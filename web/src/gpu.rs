//! Asking the browser whether WebGPU can run here.

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// True when `navigator.gpu.requestAdapter()` yields an adapter.
///
/// Checked by hand (not through wgpu) so a browser without WebGPU costs nothing and logs nothing.
pub async fn webgpu_adapter_available() -> bool {
    async fn probe() -> Result<bool, JsValue> {
        let navigator = Reflect::get(&js_sys::global(), &"navigator".into())?;
        let gpu = Reflect::get(&navigator, &"gpu".into())?;
        if gpu.is_undefined() || gpu.is_null() {
            return Ok(false);
        }
        let request: Function = Reflect::get(&gpu, &"requestAdapter".into())?.dyn_into()?;
        let promise: Promise = request.call0(&gpu)?.dyn_into()?;
        let adapter = JsFuture::from(promise).await?;
        Ok(!adapter.is_null() && !adapter.is_undefined())
    }
    probe().await.unwrap_or(false)
}
