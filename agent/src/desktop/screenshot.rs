//! The help window's optional screenshot: the X display's root window, grabbed with the core
//! protocol's `GetImage` (ZPixmap), scaled down so its longer side is at most [`MAX_SIDE`]
//! pixels, encoded as PNG. Only taken when the user turns it on.

use lifeline_shared::v1::api::SCREENSHOT_MAX_BYTES;
use x11rb::connection::Connection as _;
use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat, ImageOrder};

/// Longest side of a screenshot that is sent, in pixels.
pub const MAX_SIDE: u32 = 1600;
/// Width of the thumbnail the window shows, in pixels.
pub const THUMBNAIL_WIDTH: u32 = 240;

/// An 8-bit RGB image, rows top to bottom, no padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgb {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

/// A screenshot ready to send and to show.
#[derive(Debug, Clone)]
pub struct Screenshot {
    /// What is sent: a PNG of at most [`MAX_SIDE`] pixels on its longer side.
    pub png: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// What the window shows.
    pub thumbnail: Rgb,
}

impl Screenshot {
    /// "1600x900 PNG, 312 KB": for "What will be sent".
    pub fn describe(&self) -> String {
        format!(
            "{}x{} PNG, {} KB",
            self.width,
            self.height,
            self.png.len().div_ceil(1024)
        )
    }
}

/// Grabs the screen of the display in `DISPLAY`. Errors are sentences for the user.
pub fn capture() -> Result<Screenshot, String> {
    let full = grab().map_err(|e| format!("The screenshot could not be taken: {e}."))?;
    let image = scale_to_fit(&full, MAX_SIDE);
    let png =
        encode_png(&image).map_err(|e| format!("The screenshot could not be encoded: {e}."))?;
    if png.len() > SCREENSHOT_MAX_BYTES {
        return Err(format!(
            "The screenshot is too large to send ({} KB; the limit is {} KB).",
            png.len() / 1024,
            SCREENSHOT_MAX_BYTES / 1024
        ));
    }
    Ok(Screenshot {
        png,
        width: image.width,
        height: image.height,
        thumbnail: scale_to_width(&image, THUMBNAIL_WIDTH),
    })
}

/// The root window of the default screen, as RGB.
fn grab() -> Result<Rgb, String> {
    let (conn, screen_num) = x11rb::connect(None).map_err(|e| format!("no X display ({e})"))?;
    let setup = conn.setup();
    let screen = setup
        .roots
        .get(screen_num)
        .ok_or_else(|| "the X display has no screen".to_owned())?;
    let (width, height) = (screen.width_in_pixels, screen.height_in_pixels);
    let reply = conn
        .get_image(
            ImageFormat::Z_PIXMAP,
            screen.root,
            0,
            0,
            width,
            height,
            u32::MAX,
        )
        .map_err(|e| e.to_string())?
        .reply()
        .map_err(|e| format!("the X server refused to give the screen's image ({e})"))?;
    let format = setup
        .pixmap_formats
        .iter()
        .find(|f| f.depth == reply.depth)
        .ok_or_else(|| format!("unknown pixel format (depth {})", reply.depth))?;
    let visual = screen
        .allowed_depths
        .iter()
        .flat_map(|d| d.visuals.iter())
        .find(|v| v.visual_id == reply.visual)
        .ok_or_else(|| "unknown visual".to_owned())?;
    let layout = Layout {
        bits_per_pixel: u32::from(format.bits_per_pixel),
        scanline_pad: u32::from(format.scanline_pad),
        msb_first: setup.image_byte_order == ImageOrder::MSB_FIRST,
        masks: [visual.red_mask, visual.green_mask, visual.blue_mask],
    };
    to_rgb(&reply.data, u32::from(width), u32::from(height), &layout)
}

/// How a ZPixmap image's pixels are laid out.
#[derive(Debug, Clone, Copy)]
struct Layout {
    bits_per_pixel: u32,
    scanline_pad: u32,
    msb_first: bool,
    masks: [u32; 3],
}

/// Converts a true-colour ZPixmap (24 or 32 bits a pixel) to RGB.
fn to_rgb(data: &[u8], width: u32, height: u32, layout: &Layout) -> Result<Rgb, String> {
    let bytes_per_pixel = match layout.bits_per_pixel {
        24 => 3,
        32 => 4,
        other => return Err(format!("{other}-bit pixels are not supported")),
    };
    let pad = layout.scanline_pad.max(8);
    let stride = (width * layout.bits_per_pixel).div_ceil(pad) * pad / 8;
    let (stride, bytes_per_pixel) = (stride as usize, bytes_per_pixel as usize);
    if data.len() < stride * height as usize {
        return Err("the X server sent a short image".to_owned());
    }
    let channel = |pixel: u32, mask: u32| -> u8 {
        if mask == 0 {
            return 0;
        }
        let value = (pixel & mask) >> mask.trailing_zeros();
        let max = mask >> mask.trailing_zeros();
        u8::try_from(u64::from(value) * 255 / u64::from(max)).unwrap_or(u8::MAX)
    };
    let mut pixels = Vec::with_capacity(width as usize * height as usize * 3);
    for row in data.chunks_exact(stride).take(height as usize) {
        for px in row[..width as usize * bytes_per_pixel].chunks_exact(bytes_per_pixel) {
            let pixel = px.iter().enumerate().fold(0u32, |acc, (i, &b)| {
                if layout.msb_first {
                    (acc << 8) | u32::from(b)
                } else {
                    acc | (u32::from(b) << (8 * i))
                }
            });
            for mask in layout.masks {
                pixels.push(channel(pixel, mask));
            }
        }
    }
    Ok(Rgb {
        width,
        height,
        pixels,
    })
}

/// `image` scaled down (area average) so neither side exceeds `max_side`; as is if it fits.
pub fn scale_to_fit(image: &Rgb, max_side: u32) -> Rgb {
    let longer = image.width.max(image.height);
    if longer <= max_side {
        return image.clone();
    }
    let scale = |side: u32| (u64::from(side) * u64::from(max_side) / u64::from(longer)).max(1);
    resize(image, scale(image.width) as u32, scale(image.height) as u32)
}

/// `image` scaled to `width` pixels wide, keeping its proportions (never enlarged).
fn scale_to_width(image: &Rgb, width: u32) -> Rgb {
    if image.width <= width {
        return image.clone();
    }
    let height = (u64::from(image.height) * u64::from(width) / u64::from(image.width)).max(1);
    resize(image, width, height as u32)
}

/// Box-filter downscale to `width` x `height`.
fn resize(image: &Rgb, width: u32, height: u32) -> Rgb {
    let (sw, sh) = (image.width as usize, image.height as usize);
    let (dw, dh) = (width as usize, height as usize);
    let mut pixels = Vec::with_capacity(dw * dh * 3);
    for dy in 0..dh {
        let (y0, y1) = (dy * sh / dh, ((dy + 1) * sh / dh).max(dy * sh / dh + 1));
        for dx in 0..dw {
            let (x0, x1) = (dx * sw / dw, ((dx + 1) * sw / dw).max(dx * sw / dw + 1));
            let mut sum = [0u64; 3];
            for y in y0..y1.min(sh) {
                let row = &image.pixels[y * sw * 3..(y + 1) * sw * 3];
                for px in row[x0 * 3..x1.min(sw) * 3].chunks_exact(3) {
                    for (s, &v) in sum.iter_mut().zip(px) {
                        *s += u64::from(v);
                    }
                }
            }
            let count = ((y1.min(sh) - y0) * (x1.min(sw) - x0)).max(1) as u64;
            pixels.extend(
                sum.iter()
                    .map(|s| u8::try_from(s / count).unwrap_or(u8::MAX)),
            );
        }
    }
    Rgb {
        width,
        height,
        pixels,
    }
}

/// `image` as an 8-bit RGB PNG.
pub fn encode_png(image: &Rgb) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, image.width, image.height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&image.pixels)?;
    writer.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bgrx_pixels_become_rgb() {
        // Two pixels, little-endian 32-bit 0x00RRGGBB: red, then blue.
        let data = [0, 0, 255, 0, 255, 0, 0, 0];
        let layout = Layout {
            bits_per_pixel: 32,
            scanline_pad: 32,
            msb_first: false,
            masks: [0xff_0000, 0xff00, 0xff],
        };
        let rgb = to_rgb(&data, 2, 1, &layout).unwrap();
        assert_eq!(rgb.pixels, vec![255, 0, 0, 0, 0, 255]);
    }

    #[test]
    fn large_screens_are_scaled_to_the_longest_side_and_encoded_as_png() {
        let image = Rgb {
            width: 3200,
            height: 1000,
            pixels: vec![128; 3200 * 1000 * 3],
        };
        let scaled = scale_to_fit(&image, MAX_SIDE);
        assert_eq!((scaled.width, scaled.height), (1600, 500));
        assert!(scaled.pixels.iter().all(|&v| v == 128));
        let png = encode_png(&scaled).unwrap();
        assert!(png.starts_with(&lifeline_shared::v1::api::PNG_SIGNATURE));
        let small = Rgb {
            width: 10,
            height: 4,
            pixels: vec![1; 120],
        };
        assert_eq!(scale_to_fit(&small, MAX_SIDE), small);
        assert_eq!(scale_to_width(&scaled, 240).width, 240);
    }
}
