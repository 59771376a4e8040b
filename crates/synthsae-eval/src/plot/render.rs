//! The plumbing every plot shares: the embedded font, the output format by
//! extension, and the temporary-file-then-rename write.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;

use crate::error::{EvalError, Result};

/// The font family name every plot uses.
pub(crate) const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

pub(crate) fn register_fonts() -> Result<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        [
            FontStyle::Normal,
            FontStyle::Bold,
            FontStyle::Italic,
            FontStyle::Oblique,
        ]
        .into_iter()
        .all(|style| plotters::style::register_font(FONT, style, FONT_BYTES).is_ok())
    });
    if ok {
        Ok(())
    } else {
        Err(EvalError::Plot {
            what: "font".into(),
            reason: "the embedded DejaVu Sans could not be loaded".into(),
        })
    }
}

/// Output format, from the file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlotFormat {
    /// `.png`
    Png,
    /// `.svg`
    Svg,
}

impl PlotFormat {
    /// `.png` or `.svg` (case-insensitive); anything else is an error.
    pub fn from_path(path: &Path) -> Result<Self> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref()
        {
            Some("png") => Ok(Self::Png),
            Some("svg") => Ok(Self::Svg),
            _ => Err(EvalError::InvalidArgument {
                field: "out".into(),
                reason: format!("{}: the file name must end in .png or .svg", path.display()),
            }),
        }
    }
}

pub(crate) fn plot_err(what: &str, e: impl std::fmt::Display) -> EvalError {
    EvalError::Plot {
        what: what.to_string(),
        reason: e.to_string(),
    }
}

/// Renders into `$path` (PNG or SVG by extension) at `$size` pixels: binds
/// the root drawing area to `$root` for `$body` (which returns `Result<()>`),
/// presents it to a temporary file and renames that into place.
macro_rules! render_to {
    ($path:expr, $size:expr, $what:expr, |$root:ident| $body:expr) => {{
        let path: &std::path::Path = $path;
        let format = $crate::plot::render::PlotFormat::from_path(path)?;
        $crate::plot::render::register_fonts()?;
        let tmp = $crate::plot::render::temp_path(path)?;
        let res: $crate::error::Result<()> = match format {
            $crate::plot::render::PlotFormat::Png => {
                let $root = plotters::prelude::BitMapBackend::new(&tmp, $size).into_drawing_area();
                $body.and_then(|_| {
                    $root
                        .present()
                        .map_err(|e| $crate::plot::render::plot_err($what, e))
                })
            }
            $crate::plot::render::PlotFormat::Svg => {
                let $root = plotters::prelude::SVGBackend::new(&tmp, $size).into_drawing_area();
                $body.and_then(|_| {
                    $root
                        .present()
                        .map_err(|e| $crate::plot::render::plot_err($what, e))
                })
            }
        };
        match res {
            Ok(()) => $crate::plot::render::finish(&tmp, path),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }};
}
pub(crate) use render_to;

/// Where to draw: a temporary sibling of the target with the same extension.
pub(crate) fn temp_path(path: &Path) -> Result<PathBuf> {
    let name =
        path.file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| EvalError::InvalidArgument {
                field: "out".into(),
                reason: format!("{}: not a file name", path.display()),
            })?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| EvalError::File {
        path: dir.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok(dir.join(format!(
        ".{}.tmp-{}.{}",
        name,
        std::process::id(),
        path.extension().and_then(|e| e.to_str()).unwrap_or("tmp")
    )))
}

pub(crate) fn finish(tmp: &Path, path: &Path) -> Result<()> {
    std::fs::rename(tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(tmp);
        EvalError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        }
    })
}
