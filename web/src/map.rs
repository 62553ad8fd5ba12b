//! The similarity map: every library image as a point, look on x and idea on y. The points are
//! drawn into one pixel buffer (a single `putImageData`), the hover ring on a second canvas, and
//! the point under the pointer is found in a grid: 10,000 points stay smooth.

use leptos::ev;
use leptos::html::{Canvas, Div};
use leptos::prelude::*;
use relsim_shared::explore::{HitGrid, MapLayout, Quadrant, Query};
use relsim_shared::protocol::MapPoint;
use wasm_bindgen::{Clamped, JsCast};

use crate::api;
use crate::state::AppState;
use crate::text_model::now_ms;

/// Plot padding (CSS pixels), so edge points are not cut.
const PAD: f64 = 8.0;
/// How close (CSS pixels) the pointer must be to pick a point.
const PICK_RADIUS: f32 = 8.0;

fn colour(q: Quadrant) -> [u8; 3] {
    match q {
        Quadrant::Analogy => [217, 95, 2],
        Quadrant::Twin => [117, 112, 179],
        Quadrant::LookAlike => [27, 158, 119],
        Quadrant::Unrelated => [150, 150, 160],
    }
}

/// The plot's size in CSS pixels and the device pixel ratio.
#[derive(Clone, Copy, PartialEq)]
struct Size {
    width: f64,
    height: f64,
    dpr: f64,
}

impl Size {
    /// Where a unit-square position lands, in CSS pixels (y up in the unit square, down on screen).
    fn place(&self, (x, y): (f32, f32)) -> (f32, f32) {
        ((PAD + x as f64 * (self.width - 2.0 * PAD)) as f32, (PAD + (1.0 - y as f64) * (self.height - 2.0 * PAD)) as f32)
    }
}

fn context(canvas: &web_sys::HtmlCanvasElement) -> Option<web_sys::CanvasRenderingContext2d> {
    canvas.get_context("2d").ok().flatten()?.dyn_into().ok()
}

/// Draws background, quadrant lines and points into one RGBA buffer.
fn draw_points(canvas: &web_sys::HtmlCanvasElement, size: Size, layout: &MapLayout, points: &[MapPoint]) {
    let (w, h) = ((size.width * size.dpr).round() as usize, (size.height * size.dpr).round() as usize);
    canvas.set_width(w as u32);
    canvas.set_height(h as u32);
    let Some(ctx) = context(canvas) else { return };
    let mut pixels = vec![0u8; w * h * 4];
    for (i, px) in pixels.chunks_exact_mut(4).enumerate() {
        let (x, y) = (i % w, i / w);
        // The analogy quadrant (top left) is tinted.
        let analogy = (x as f64) < w as f64 / 2.0 && (y as f64) < h as f64 / 2.0;
        px.copy_from_slice(if analogy { &[255, 246, 232, 255] } else { &[252, 252, 254, 255] });
    }
    for x in 0..w {
        pixels[((h / 2) * w + x) * 4..][..3].copy_from_slice(&[200, 200, 210]);
    }
    for y in 0..h {
        pixels[(y * w + w / 2) * 4..][..3].copy_from_slice(&[200, 200, 210]);
    }
    let dot = (2.0 * size.dpr).round().max(1.0) as i64;
    for p in points {
        let (cx, cy) = size.place(layout.unit(p));
        let (cx, cy) = ((cx as f64 * size.dpr) as i64, (cy as f64 * size.dpr) as i64);
        let [r, g, b] = colour(layout.quadrant(p));
        for y in (cy - dot).max(0)..(cy + dot).min(h as i64) {
            for x in (cx - dot).max(0)..(cx + dot).min(w as i64) {
                let i = (y as usize * w + x as usize) * 4;
                // 75% ink over what is there, so dense regions read darker.
                for (c, v) in [r, g, b].into_iter().enumerate() {
                    pixels[i + c] = ((pixels[i + c] as u16 + 3 * v as u16) / 4) as u8;
                }
            }
        }
    }
    if let Ok(image) = web_sys::ImageData::new_with_u8_clamped_array_and_sh(Clamped(&pixels), w as u32, h as u32) {
        let _ = ctx.put_image_data(&image, 0.0, 0.0);
    }
}

/// Rings the point under the pointer (or chosen with the keyboard).
fn draw_ring(canvas: &web_sys::HtmlCanvasElement, size: Size, at: Option<(f32, f32)>) {
    let (w, h) = ((size.width * size.dpr).round() as u32, (size.height * size.dpr).round() as u32);
    if canvas.width() != w || canvas.height() != h {
        canvas.set_width(w);
        canvas.set_height(h);
    }
    let Some(ctx) = context(canvas) else { return };
    ctx.clear_rect(0.0, 0.0, w as f64, h as f64);
    if let Some((x, y)) = at {
        ctx.begin_path();
        let _ = ctx.arc(x as f64 * size.dpr, y as f64 * size.dpr, 7.0 * size.dpr, 0.0, std::f64::consts::TAU);
        ctx.set_line_width(2.0 * size.dpr);
        ctx.set_stroke_style_str("#111");
        ctx.stroke();
    }
}

/// The map of the current query.
#[component]
pub fn SimilarityMap(points: ReadSignal<Vec<MapPoint>>) -> impl IntoView {
    let app = expect_context::<AppState>();
    let frame = NodeRef::<Div>::new();
    let base = NodeRef::<Canvas>::new();
    let overlay = NodeRef::<Canvas>::new();
    let size = RwSignal::new(None::<Size>);
    let grid = StoredValue::new(None::<HitGrid>);
    let positions = StoredValue::new(Vec::<(f32, f32)>::new());
    // Keyboard order: most related first.
    let order = StoredValue::new(Vec::<usize>::new());
    let hovered = RwSignal::new(None::<usize>);
    let render_ms = RwSignal::new(0.0f64);

    let measure = move || {
        let width = frame.get_untracked().map(|f| f.client_width() as f64).unwrap_or(600.0).max(240.0);
        let dpr = web_sys::window().map(|w| w.device_pixel_ratio()).unwrap_or(1.0).clamp(1.0, 3.0);
        size.set(Some(Size { width, height: (width * 0.6).clamp(220.0, 440.0), dpr }));
    };
    Effect::new(move |_| {
        if frame.get().is_some() {
            measure();
        }
    });
    let resize = window_event_listener(ev::resize, move |_| measure());
    on_cleanup(move || resize.remove());

    // New points or a new size: lay out, draw once, rebuild the pick grid.
    Effect::new(move |_| {
        let (Some(size), Some(canvas)) = (size.get(), base.get()) else { return };
        let start = now_ms();
        points.with(|points| {
            let layout = MapLayout::fit(points);
            draw_points(&canvas, size, &layout, points);
            let placed: Vec<(f32, f32)> = points.iter().map(|p| size.place(layout.unit(p))).collect();
            grid.set_value(Some(HitGrid::new(placed.clone(), size.width as f32, size.height as f32, PICK_RADIUS)));
            positions.set_value(placed);
            let mut by_idea: Vec<usize> = (0..points.len()).collect();
            by_idea.sort_by(|&a, &b| points[b].relational.total_cmp(&points[a].relational));
            order.set_value(by_idea);
        });
        hovered.set(None);
        render_ms.set(now_ms() - start);
    });
    Effect::new(move |_| {
        let (Some(size), Some(canvas)) = (size.get(), overlay.get()) else { return };
        let at = hovered.get().and_then(|i| positions.with_value(|p| p.get(i).copied()));
        draw_ring(&canvas, size, at);
    });

    let pick = move |e: &ev::MouseEvent| -> Option<usize> {
        grid.with_value(|g| g.as_ref().and_then(|g| g.nearest(e.offset_x() as f32, e.offset_y() as f32, PICK_RADIUS)))
    };
    let choose = move |i: usize| {
        if let Some(id) = points.with_untracked(|p| p.get(i).map(|p| p.id.clone())) {
            app.query(Query::Image(id));
        }
    };
    let tip = move || {
        let i = hovered.get()?;
        let point = points.with(|p| p.get(i).cloned())?;
        let (x, y) = positions.with_value(|p| p.get(i).copied())?;
        let width = size.get().map_or(600.0, |s| s.width) as f32;
        // Keep the tip inside the plot: to the left of points on the right half.
        let left = if x > width / 2.0 { x - 150.0 } else { x + 14.0 };
        let look = point.attribute.map(|a| format!(" · look {a:.2}")).unwrap_or_default();
        Some(view! {
            <div id="map-tip" class="map-tip" data-id=point.id.clone() style:left=format!("{left}px") style:top=format!("{}px", (y - 20.0).max(0.0))>
                <img src=api::thumbnail(&point.id) alt="" width="96" height="96" />
                <span>{format!("idea {:.2}{look}", point.relational)}</span>
            </div>
        })
    };
    let text_query = move || app.url.with(|s| matches!(s.query, Some(Query::Idea(_))));

    view! {
        <div class="map-frame" node_ref=frame>
            <span class="quadrant q-analogy">"Same idea, different look: analogies"</span>
            <span class="quadrant q-twin">"Same idea, same look"</span>
            <span class="quadrant q-look">"Same look only"</span>
            <span class="quadrant q-none">"Neither"</span>
            <canvas id="map" class="map-base" node_ref=base data-points=move || points.with(Vec::len).to_string()
                data-render-ms=move || format!("{:.1}", render_ms.get())
                style:height=move || size.get().map(|s| format!("{}px", s.height)).unwrap_or_default()></canvas>
            <canvas class="map-overlay" node_ref=overlay tabindex="0" role="img"
                aria-label="Similarity map: look on the horizontal axis, idea on the vertical axis. Arrow keys step through the images, most related first; Enter searches with the one chosen."
                style:height=move || size.get().map(|s| format!("{}px", s.height)).unwrap_or_default()
                on:mousemove=move |e: ev::MouseEvent| {
                    let now = pick(&e);
                    if now != hovered.get_untracked() { hovered.set(now); }
                }
                on:mouseleave=move |_| hovered.set(None)
                on:click=move |e: ev::MouseEvent| if let Some(i) = pick(&e) { choose(i) }
                on:keydown=move |e: ev::KeyboardEvent| {
                    let n = order.with_value(Vec::len);
                    if n == 0 { return; }
                    let rank = hovered.get_untracked().and_then(|h| order.with_value(|o| o.iter().position(|&i| i == h)));
                    let next = match (e.key().as_str(), rank) {
                        ("ArrowRight" | "ArrowDown", None) => 0,
                        ("ArrowRight" | "ArrowDown", Some(r)) => (r + 1).min(n - 1),
                        ("ArrowLeft" | "ArrowUp", Some(r)) => r.saturating_sub(1),
                        ("Enter", Some(r)) => {
                            e.prevent_default();
                            choose(order.with_value(|o| o[r]));
                            return;
                        }
                        _ => return,
                    };
                    e.prevent_default();
                    hovered.set(Some(order.with_value(|o| o[next])));
                }></canvas>
            {tip}
            <span class="axis axis-x">"looks alike →"</span>
            <span class="axis axis-y">"same idea →"</span>
        </div>
        <Show when=text_query>
            <p class="note">"An idea has no look, so every point sits in the middle column: height shows how well each image fits the idea."</p>
        </Show>
    }
}
