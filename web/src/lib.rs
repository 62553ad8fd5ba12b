//! relsim-web: the browser app. The analogy explorer over the companion's library, classroom
//! mode, and MiniLM running here on WebGPU when the browser offers an adapter, on the CPU otherwise.

mod api;
mod app;
mod classroom;
mod encoder_panel;
mod explorer;
mod gpu;
mod keys;
mod latest;
mod map;
mod models;
mod quiz;
mod stage;
mod state;
mod student;
mod study;
mod text_model;

use wasm_bindgen::prelude::wasm_bindgen;

/// Entry point called by the generated JS glue.
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}
