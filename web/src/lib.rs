//! relsim-web: the browser app. MiniLM runs here, on WebGPU when the browser offers an adapter and
//! on the CPU otherwise.

mod app;
mod gpu;
mod models;

use wasm_bindgen::prelude::wasm_bindgen;

/// Entry point called by the generated JS glue.
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}
