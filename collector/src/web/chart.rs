//! The vitals chart: CPU, memory and fullest-disk use over the recent heartbeats, as inline SVG.
//!
//! Only numbers go into the chart (coordinates computed here from the stored figures); labels
//! are fixed words in the template, so nothing an agent sends can become markup.

use lifeline_shared::v1::api::VitalsSample;

/// Drawing area, in SVG user units.
pub const WIDTH: f64 = 600.0;
pub const HEIGHT: f64 = 150.0;

/// A chart ready for the template: `points` attributes of three polylines.
#[derive(Debug, Clone, PartialEq)]
pub struct VitalsChart {
    pub cpu: String,
    pub memory: String,
    pub disk: String,
    /// Newest figures, whole percent.
    pub last_cpu: u32,
    pub last_memory: u32,
    pub last_disk: Option<u32>,
    pub samples: usize,
    /// How much time the chart spans, in words (`45 s`, `12 min`).
    pub span: String,
}

fn clamp_percent(value: f64) -> f64 {
    if value.is_finite() {
        value.clamp(0.0, 100.0)
    } else {
        0.0
    }
}

/// A chart of `samples` (newest first), or `None` with fewer than two.
pub fn vitals(samples: &[VitalsSample]) -> Option<VitalsChart> {
    if samples.len() < 2 {
        return None;
    }
    let mut oldest_first: Vec<&VitalsSample> = samples.iter().collect();
    oldest_first.reverse();
    let start = oldest_first.first()?.received_at;
    let end = oldest_first.last()?.received_at;
    let span = (end - start).as_seconds_f64().max(1.0);
    let x = |s: &VitalsSample| ((s.received_at - start).as_seconds_f64() / span) * WIDTH;
    let y = |percent: f64| HEIGHT - clamp_percent(percent) / 100.0 * HEIGHT;
    let line = |value: &dyn Fn(&VitalsSample) -> Option<f64>| {
        oldest_first
            .iter()
            .filter_map(|s| value(s).map(|v| format!("{:.1},{:.1}", x(s), y(v))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let newest = samples.first()?;
    let whole = |v: f64| clamp_percent(v).round() as u32;
    Some(VitalsChart {
        cpu: line(&|s| Some(f64::from(s.vitals.cpu_percent))),
        memory: line(&|s| Some(f64::from(s.vitals.memory_percent))),
        disk: line(&|s| {
            s.vitals
                .busiest_disk
                .as_ref()
                .map(|d| f64::from(d.used_percent))
        }),
        last_cpu: whole(f64::from(newest.vitals.cpu_percent)),
        last_memory: whole(f64::from(newest.vitals.memory_percent)),
        last_disk: newest
            .vitals
            .busiest_disk
            .as_ref()
            .map(|d| whole(f64::from(d.used_percent))),
        samples: samples.len(),
        span: match (end - start).whole_seconds() {
            secs @ 0..=119 => format!("{secs} s"),
            secs => format!("{} min", secs / 60),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeline_shared::v1::vitals::{DiskUse, Vitals};
    use time::OffsetDateTime;

    fn sample(secs: i64, cpu: f32) -> VitalsSample {
        VitalsSample {
            received_at: OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(secs),
            vitals: Vitals {
                cpu_percent: cpu,
                memory_percent: 50.0,
                busiest_disk: Some(DiskUse {
                    mount_point: "<script>".into(),
                    used_percent: 250.0,
                }),
                ..Vitals::default()
            },
        }
    }

    #[test]
    fn points_are_numbers_scaled_to_the_drawing_area() {
        assert!(vitals(&[sample(0, 1.0)]).is_none());
        let chart = vitals(&[sample(60, 100.0), sample(0, 0.0)]).unwrap();
        assert_eq!(chart.cpu, "0.0,150.0 600.0,0.0");
        assert_eq!(chart.memory, "0.0,75.0 600.0,75.0");
        // Out-of-range figures are clamped, and nothing but digits, dots, commas and spaces.
        assert_eq!(chart.disk, "0.0,0.0 600.0,0.0");
        assert_eq!(chart.last_disk, Some(100));
        assert!(
            chart
                .cpu
                .chars()
                .all(|c| c.is_ascii_digit() || ".-, ".contains(c))
        );
    }
}
