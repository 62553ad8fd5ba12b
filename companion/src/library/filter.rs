//! Which images a search or the library listing looks at: a folder of the library and a span of
//! days, the day being when the photo was taken (EXIF DateTimeOriginal) or else its file's time.

use std::path::{Component, Path, PathBuf};

use chrono::{NaiveDate, NaiveDateTime};
use relsim_shared::protocol::{DateSource, LibraryFilter};

use super::catalog::Item;

/// How dates travel: local time to the second, without a zone (EXIF has none either).
pub const DATE_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";
/// How filter days are written.
const DAY_FORMAT: &str = "%Y-%m-%d";

/// When a photo was taken, as its camera wrote it: EXIF DateTimeOriginal in any container that
/// carries EXIF (JPEG, TIFF, PNG, WebP, HEIF). None without one, or when it is not a real date
/// (cameras write `0000:00:00 00:00:00` when their clock was never set).
pub fn exif_date(bytes: &[u8]) -> Option<NaiveDateTime> {
    let exif = exif::Reader::new().read_from_container(&mut std::io::Cursor::new(bytes)).ok()?;
    let field = exif.get_field(exif::Tag::DateTimeOriginal, exif::In::PRIMARY)?;
    let exif::Value::Ascii(values) = &field.value else { return None };
    let at = exif::DateTime::from_ascii(values.first()?).ok()?;
    NaiveDate::from_ymd_opt(at.year.into(), at.month.into(), at.day.into())?.and_hms_opt(at.hour.into(), at.minute.into(), at.second.into())
}

/// A file time (nanoseconds since the Unix epoch) as local time on this machine, the way a file
/// manager shows it.
pub fn file_date(mtime_ns: i64) -> Option<NaiveDateTime> {
    (mtime_ns > 0).then(|| chrono::DateTime::from_timestamp_nanos(mtime_ns).with_timezone(&chrono::Local).naive_local())
}

/// An image's date and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dated {
    pub at: NaiveDateTime,
    pub source: DateSource,
}

impl Dated {
    /// The EXIF date stored with the image (see [`DATE_FORMAT`]), else its file's time.
    pub fn of(taken: Option<&str>, mtime_ns: i64) -> Option<Self> {
        taken
            .and_then(|t| NaiveDateTime::parse_from_str(t, DATE_FORMAT).ok())
            .map(|at| Dated { at, source: DateSource::Exif })
            .or_else(|| file_date(mtime_ns).map(|at| Dated { at, source: DateSource::File }))
    }

    /// As the API writes it.
    pub fn text(&self) -> String {
        self.at.format(DATE_FORMAT).to_string()
    }
}

/// A checked [`LibraryFilter`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    folder: Option<PathBuf>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
}

fn day(name: &str, value: &Option<String>) -> Result<Option<NaiveDate>, String> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => NaiveDate::parse_from_str(text, DAY_FORMAT).map(Some).map_err(|_| format!("`{name}` must be a day written YYYY-MM-DD, not `{text}`")),
    }
}

impl Filter {
    /// Checks `filter` against the library folders `roots`: the folder must be one of them or
    /// inside one (absolute, no `..`), the days real and in order.
    pub fn parse(filter: &LibraryFilter, roots: &[PathBuf]) -> Result<Self, String> {
        let folder = match filter.folder.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => {
                let path = Path::new(text);
                let inside = path.is_absolute() && !path.components().any(|c| matches!(c, Component::ParentDir)) && roots.iter().any(|r| path.starts_with(r));
                if !inside {
                    return Err(format!("folder `{text}` is not a library folder or inside one (the library's folders: {})", roots.iter().map(|r| r.display().to_string()).collect::<Vec<_>>().join(", ")));
                }
                Some(path.components().collect())
            }
        };
        let (from, to) = (day("from", &filter.from)?, day("to", &filter.to)?);
        if let (Some(from), Some(to)) = (from, to) {
            if from > to {
                return Err(format!("`from` ({from}) is after `to` ({to})"));
            }
        }
        Ok(Filter { folder, from, to })
    }

    /// Whether it keeps every image.
    pub fn is_empty(&self) -> bool {
        self.folder.is_none() && self.from.is_none() && self.to.is_none()
    }

    /// Whether `item` passes: one of its files lies in the folder, and its day is in the span
    /// (an image without a date passes no span).
    pub fn keeps(&self, item: &Item) -> bool {
        if let Some(folder) = &self.folder {
            if !item.paths.iter().any(|p| p.starts_with(folder)) {
                return false;
            }
        }
        if self.from.is_none() && self.to.is_none() {
            return true;
        }
        let Some(day) = item.date.map(|d| d.at.date()) else { return false };
        self.from.is_none_or(|from| day >= from) && self.to.is_none_or(|to| day <= to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(paths: &[&str], taken: Option<&str>) -> Item {
        Item { id: "ab".into(), paths: paths.iter().map(PathBuf::from).collect(), width: 1, height: 1, date: Dated::of(taken, 0) }
    }

    fn filter(folder: Option<&str>, from: Option<&str>, to: Option<&str>) -> Result<Filter, String> {
        let f = LibraryFilter { folder: folder.map(Into::into), from: from.map(Into::into), to: to.map(Into::into) };
        Filter::parse(&f, &[PathBuf::from("/lib"), PathBuf::from("/other")])
    }

    #[test]
    fn folders_keep_their_images_and_those_below() {
        let f = filter(Some("/lib/2021"), None, None).unwrap();
        assert!(f.keeps(&item(&["/lib/2021/a.jpg"], None)));
        assert!(f.keeps(&item(&["/lib/2021/trip/a.jpg"], None)));
        assert!(f.keeps(&item(&["/lib/x.jpg", "/lib/2021/copy.jpg"], None)), "a copy inside counts");
        assert!(!f.keeps(&item(&["/lib/2021-old/a.jpg"], None)), "a folder whose name starts alike is another folder");
        assert!(!f.keeps(&item(&["/other/2021/a.jpg"], None)));
        assert!(filter(Some("/lib/2021/"), None, None).unwrap().keeps(&item(&["/lib/2021/a.jpg"], None)));
        assert!(filter(Some("/lib"), None, None).unwrap().keeps(&item(&["/lib/a.jpg"], None)));
    }

    #[test]
    fn days_are_inclusive_and_undated_images_pass_no_span() {
        let noon = Some("2021-03-05T12:00:00");
        let last_second = Some("2021-03-05T23:59:59");
        assert!(filter(None, Some("2021-03-05"), Some("2021-03-05")).unwrap().keeps(&item(&["/lib/a"], noon)));
        assert!(filter(None, Some("2021-03-05"), Some("2021-03-05")).unwrap().keeps(&item(&["/lib/a"], last_second)));
        assert!(!filter(None, Some("2021-03-06"), None).unwrap().keeps(&item(&["/lib/a"], last_second)));
        assert!(!filter(None, None, Some("2021-03-04")).unwrap().keeps(&item(&["/lib/a"], noon)));
        assert!(filter(None, None, Some("2021-03-05")).unwrap().keeps(&item(&["/lib/a"], noon)));
        assert!(!filter(None, Some("1970-01-01"), None).unwrap().keeps(&item(&["/lib/a"], None)));
        assert!(filter(None, None, None).unwrap().keeps(&item(&["/lib/a"], None)));
        assert!(filter(Some(""), Some(" "), None).unwrap().is_empty(), "blank parts are no filter");
    }

    #[test]
    fn bad_filters_say_what_is_wrong() {
        assert!(filter(Some("/elsewhere"), None, None).unwrap_err().contains("not a library folder"));
        assert!(filter(Some("lib"), None, None).unwrap_err().contains("not a library folder"), "relative");
        assert!(filter(Some("/lib/../etc"), None, None).unwrap_err().contains("not a library folder"));
        assert!(filter(None, Some("2021-02-30"), None).unwrap_err().contains("`from` must be a day"));
        assert!(filter(None, None, Some("05/03/2021")).unwrap_err().contains("`to` must be a day"));
        assert!(filter(None, Some("2021-03-06"), Some("2021-03-05")).unwrap_err().contains("after"));
    }

    #[test]
    fn exif_dates_win_over_file_times() {
        let d = Dated::of(Some("2019-07-20T20:17:40"), 1_700_000_000_000_000_000).unwrap();
        assert_eq!((d.text().as_str(), d.source), ("2019-07-20T20:17:40", DateSource::Exif));
        let d = Dated::of(None, 1_700_000_000_000_000_000).unwrap();
        assert_eq!(d.source, DateSource::File);
        assert_eq!(d.at, chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap().with_timezone(&chrono::Local).naive_local());
        assert_eq!(Dated::of(None, 0), None);
        assert_eq!(exif_date(b"not an image"), None);
    }
}
