//! The hardware section: DMI identity, batteries, temperatures, GPUs.
//!
//! Much of this is absent on virtual machines and servers (no battery, no sensors); absence is a
//! normal answer, not an error. The serial number is readable by root only.

use std::path::Path;

use lifeline_shared::v1::snapshot::{Battery, Gpu, Hardware, Temperature};

use super::{Options, Problems, read_trimmed};

const DMI: &str = "/sys/class/dmi/id";
const POWER_SUPPLY: &str = "/sys/class/power_supply";
const DRM: &str = "/sys/class/drm";

pub fn collect(_options: &Options) -> (Hardware, Problems) {
    let mut problems = Vec::new();
    let dmi = Path::new(DMI);
    let field = |name: &str| read_trimmed(dmi.join(name)).filter(|v| !is_placeholder(v));
    let serial = field("product_serial");
    if serial.is_none()
        && dmi.join("product_serial").exists()
        && !rustix::process::geteuid().is_root()
    {
        problems.push("serial number not read (needs root)".to_owned());
    }
    let hardware = Hardware {
        vendor: field("sys_vendor"),
        product: field("product_name"),
        serial,
        bios_version: field("bios_version"),
        board: field("board_name"),
        chassis: read_trimmed(dmi.join("chassis_type")).and_then(|t| chassis_name(&t)),
        batteries: batteries(Path::new(POWER_SUPPLY)),
        temperatures: temperatures(&mut problems),
        gpus: gpus(Path::new(DRM)),
    };
    (hardware, problems)
}

/// Firmware fills unset DMI fields with filler text.
fn is_placeholder(value: &str) -> bool {
    let v = value.to_ascii_lowercase();
    [
        "to be filled by o.e.m.",
        "default string",
        "not specified",
        "none",
        "system serial number",
        "0123456789",
    ]
    .contains(&v.as_str())
}

/// SMBIOS chassis type codes people recognise.
fn chassis_name(code: &str) -> Option<String> {
    let name = match code.parse::<u32>().ok()? {
        3 => "desktop",
        4 => "low-profile desktop",
        6 => "mini tower",
        7 => "tower",
        8 => "portable",
        9 => "laptop",
        10 => "notebook",
        13 => "all-in-one",
        14 => "sub-notebook",
        17 => "server",
        30 => "tablet",
        31 => "convertible",
        32 => "detachable",
        35 => "mini PC",
        1 => "other",
        _ => return None,
    };
    Some(name.to_owned())
}

/// Batteries under `/sys/class/power_supply` (type "Battery").
pub fn batteries(root: &Path) -> Vec<Battery> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut out: Vec<Battery> = entries
        .flatten()
        .filter_map(|e| {
            let dir = e.path();
            if read_trimmed(dir.join("type")).as_deref() != Some("Battery") {
                return None;
            }
            let num = |f: &str| read_trimmed(dir.join(f)).and_then(|v| v.parse::<f64>().ok());
            // Drivers report energy (µWh) or charge (µAh); either ratio is the health.
            let health = match (num("energy_full"), num("energy_full_design")) {
                (Some(full), Some(design)) if design > 0.0 => Some(full * 100.0 / design),
                _ => match (num("charge_full"), num("charge_full_design")) {
                    (Some(full), Some(design)) if design > 0.0 => Some(full * 100.0 / design),
                    _ => None,
                },
            };
            Some(Battery {
                name: e.file_name().to_string_lossy().into_owned(),
                status: read_trimmed(dir.join("status")),
                charge_percent: num("capacity"),
                health_percent: health.map(|h| (h * 10.0).round() / 10.0),
                cycle_count: num("cycle_count").map(|c| c as u32).filter(|c| *c > 0),
                technology: read_trimmed(dir.join("technology")),
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn temperatures(problems: &mut Problems) -> Vec<Temperature> {
    match sysinfo::Components::new_with_refreshed_list() {
        Ok(components) => components
            .iter()
            .map(|c| Temperature {
                label: c.label().to_owned(),
                celsius: c.temperature(),
                max_celsius: c.max(),
                critical_celsius: c.critical(),
            })
            .collect(),
        Err(e) => {
            problems.push(format!("temperature sensors: {e}"));
            Vec::new()
        }
    }
}

/// Display adapters under `/sys/class/drm` (`card0`, not connectors like `card0-HDMI-A-1`).
pub fn gpus(root: &Path) -> Vec<Gpu> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut out: Vec<Gpu> = entries
        .flatten()
        .filter_map(|e| {
            let card = e.file_name().to_string_lossy().into_owned();
            let digits = card.strip_prefix("card")?;
            if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let dev = e.path().join("device");
            let vendor_id = read_trimmed(dev.join("vendor"));
            Some(Gpu {
                vendor: vendor_id
                    .as_deref()
                    .and_then(vendor_name)
                    .map(str::to_owned),
                device_id: read_trimmed(dev.join("device")),
                driver: std::fs::read_link(dev.join("driver"))
                    .ok()
                    .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())),
                vendor_id,
                card,
            })
        })
        .collect();
    out.sort_by(|a, b| a.card.cmp(&b.card));
    out
}

fn vendor_name(pci_id: &str) -> Option<&'static str> {
    Some(match pci_id {
        "0x8086" => "Intel",
        "0x10de" => "NVIDIA",
        "0x1002" => "AMD",
        "0x1af4" => "Red Hat (virtio)",
        "0x1234" => "QEMU",
        "0x15ad" => "VMware",
        "0x80ee" => "VirtualBox",
        "0x1414" => "Microsoft",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, file: &str, value: &str) {
        std::fs::create_dir_all(dir.join(file).parent().unwrap()).unwrap();
        std::fs::write(dir.join(file), value).unwrap();
    }

    #[test]
    fn battery_health_from_energy_or_charge() {
        let root = tempfile::tempdir().unwrap();
        let bat = root.path().join("BAT0");
        write(&bat, "type", "Battery\n");
        write(&bat, "status", "Discharging\n");
        write(&bat, "capacity", "64\n");
        write(&bat, "energy_full", "28500000\n");
        write(&bat, "energy_full_design", "57000000\n");
        write(&bat, "cycle_count", "812\n");
        let bat1 = root.path().join("BAT1");
        write(&bat1, "type", "Battery\n");
        write(&bat1, "charge_full", "4000000\n");
        write(&bat1, "charge_full_design", "5000000\n");
        let ac = root.path().join("AC");
        write(&ac, "type", "Mains\n");
        let found = batteries(root.path());
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].health_percent, Some(50.0));
        assert_eq!(found[0].charge_percent, Some(64.0));
        assert_eq!(found[0].cycle_count, Some(812));
        assert_eq!(found[1].health_percent, Some(80.0));
    }

    #[test]
    fn gpus_skip_connectors_and_name_vendors() {
        let root = tempfile::tempdir().unwrap();
        write(&root.path().join("card0"), "device/vendor", "0x8086\n");
        write(&root.path().join("card0"), "device/device", "0x9a49\n");
        std::fs::create_dir_all(root.path().join("card0-eDP-1")).unwrap();
        std::fs::create_dir_all(root.path().join("renderD128")).unwrap();
        let found = gpus(root.path());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].vendor.as_deref(), Some("Intel"));
        assert_eq!(found[0].device_id.as_deref(), Some("0x9a49"));
    }

    #[test]
    fn firmware_filler_is_not_reported() {
        assert!(is_placeholder("To Be Filled By O.E.M."));
        assert!(!is_placeholder("ThinkPad T14 Gen 3"));
        assert_eq!(chassis_name("10").as_deref(), Some("notebook"));
        assert_eq!(chassis_name("x"), None);
    }
}
