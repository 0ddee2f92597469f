//! What the help and consent windows share: eframe start-up (OpenGL through glow, X11) and a
//! readable style.

use eframe::egui;

/// Starts a window titled `title` of `size` logical pixels running `app`, and returns when it is
/// closed.
pub fn run_window<A: eframe::App + 'static>(
    title: &str,
    size: [f32; 2],
    app: A,
) -> Result<(), String> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title(title)
            .with_app_id("lifeline-agent")
            .with_inner_size(size)
            .with_min_inner_size([size[0] * 0.75, size[1] * 0.6])
            .with_active(true),
        centered: true,
        ..eframe::NativeOptions::default()
    };
    eframe::run_native(
        title,
        options,
        Box::new(|cc| {
            style(&cc.egui_ctx);
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| e.to_string())
}

/// Slightly larger text than egui's default, for people who are not developers.
fn style(ctx: &egui::Context) {
    ctx.all_styles_mut(|style| {
        for (text_style, font) in style.text_styles.iter_mut() {
            font.size = match text_style {
                egui::TextStyle::Heading => 22.0,
                egui::TextStyle::Small => 12.0,
                egui::TextStyle::Monospace => 13.0,
                _ => 15.0,
            };
        }
        style.spacing.item_spacing = egui::vec2(8.0, 8.0);
        style.spacing.button_padding = egui::vec2(14.0, 6.0);
    });
}
