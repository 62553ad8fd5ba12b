//! Keyboard shortcuts' one question: is the key aimed at something else on the page?

use wasm_bindgen::JsCast;

/// The tag name of the element a key event is aimed at (`INPUT`, `BUTTON`, ...), upper case.
pub fn target_tag(e: &web_sys::KeyboardEvent) -> String {
    e.target().and_then(|t| t.dyn_into::<web_sys::HtmlElement>().ok()).map(|t| t.tag_name()).unwrap_or_default()
}

/// Whether the key goes into a text field: shortcuts then leave it alone.
pub fn typing_target(e: &web_sys::KeyboardEvent) -> bool {
    matches!(target_tag(e).as_str(), "INPUT" | "TEXTAREA")
}
