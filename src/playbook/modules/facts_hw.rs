//! The `hardware` facts: memory and CPUs, `ansible_mounts` (every mounted filesystem with a
//! device, its statvfs sizes, bind mounts marked and UUIDs from lsblk) and `ansible_devices`
//! (the block devices of /sys/block with their partitions, holders and /dev/disk links), in
//! the shapes Ansible's Linux hardware collector gives. The script reads sysfs with shell
//! builtins and runs one `stat -f` for all mounts, so it costs a handful of processes.

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

pub(super) const HW_SCRIPT: &str = r#"awk '/^MemTotal:/{print "memtotal_kb="$2} /^MemFree:/{print "memfree_kb="$2} /^SwapTotal:/{print "swaptotal_kb="$2}' /proc/meminfo 2>/dev/null
echo "vcpus=$(nproc 2>/dev/null || grep -c ^processor /proc/cpuinfo)"
set --
while read -r dev mnt fs opts dump pass; do
  case "$dev" in /*|*:/*|\\*) ;; *) continue ;; esac
  [ "$fs" = none ] && continue
  echo "mnt=$dev $mnt $fs $opts $dump $pass"
  case "$mnt" in *\\*) m=$(printf '%b' "$mnt") ;; *) m=$mnt ;; esac
  set -- "$@" "$m"
done < /proc/mounts
[ $# -gt 0 ] && stat -f -c 'mst=%n|%S %s %b %f %a %c %d' "$@" 2>/dev/null
command -v findmnt >/dev/null 2>&1 && findmnt -lnur -o TARGET,SOURCE 2>/dev/null | sed -n 's/^\([^ ]*\) .*\]$/bind=\1/p'
command -v lsblk >/dev/null 2>&1 && lsblk --list --noheadings --paths --output NAME,UUID --exclude 2 2>/dev/null | sed 's/^/uuid=/'
rd() { [ -r "$1" ] && read -r v < "$1" 2>/dev/null && echo "$2=$3|$v"; }
for b in /sys/block/*; do
  [ -e "$b" ] || continue; n=${b##*/}
  if [ -L "$b" ]; then echo "dev=$n|1"; else v=0; for x in "$b"/*device*; do [ -e "$x" ] && v=1; done; [ $v = 1 ] && echo "dev=$n|0" || echo "dev=$n|1"; fi
  for f in removable size queue/rotational queue/scheduler queue/logical_block_size queue/hw_sector_size queue/discard_max_hw_bytes queue/discard_granularity device/vendor device/model device/sas_address device/sas_device_handle device/serial; do rd "$b/$f" devf "$n|$f"; done
  for h in "$b"/holders/*; do [ -e "$h" ] && echo "devh=$n|${h##*/}"; done
  for s in "$b"/slaves/*; do [ -e "$s" ] && echo "master=${s##*/}|$n"; done
  for p in "$b/$n"*; do
    [ -d "$p" ] || continue; pn=${p##*/}; echo "part=$n|$pn"
    for f in start size; do rd "$p/$f" partf "$pn|$f"; done
    for h in "$p"/holders/*; do [ -e "$h" ] && echo "parth=$pn|${h##*/}"; done
  done
done
for t in id uuid label; do [ -d /dev/disk/by-$t ] && ls -l /dev/disk/by-$t 2>/dev/null | sed -n "s|.* \([^ ]*\) -> .*/\([^/]*\)$|link=$t|\1|\2|p"; done
"#;

fn lines<'a>(out: &'a str, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    out.lines().filter_map(move |l| l.strip_prefix(prefix))
}

/// `\040`-style octal escapes of /proc/mounts decoded.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        if let (b'\\', Some(d)) = (b[i], octal) {
            let v = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
            out.push(v as u8);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `ansible_mounts`, in /proc/mounts order.
pub(super) fn mounts(out: &str) -> Value {
    let mut sizes: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for l in lines(out, "mst=") {
        if let Some((name, nums)) = l.rsplit_once('|') {
            let v: Vec<u64> = nums.split(' ').filter_map(|x| x.parse().ok()).collect();
            if v.len() == 7 {
                sizes.insert(name.to_string(), v);
            }
        }
    }
    let binds: Vec<String> = lines(out, "bind=").map(unescape).collect();
    let uuids: BTreeMap<&str, &str> = lines(out, "uuid=")
        .filter_map(|l| l.split_once(' '))
        .map(|(d, u)| (d, u.trim()))
        .filter(|(_, u)| !u.is_empty())
        .collect();
    let mut list = Vec::new();
    for l in lines(out, "mnt=") {
        let f: Vec<&str> = l.split(' ').collect();
        if f.len() < 6 {
            continue;
        }
        let (device, mount) = (unescape(f[0]), unescape(f[1]));
        let mut options = unescape(f[3]);
        if binds.contains(&mount) && !options.split(',').any(|o| o == "bind") {
            options.push_str(",bind");
        }
        let mut m = json!({
            "mount": mount, "device": device, "fstype": f[2], "options": options,
            "dump": f[4].parse::<i64>().unwrap_or(0), "passno": f[5].parse::<i64>().unwrap_or(0),
            "uuid": uuids.get(device.as_str()).copied().unwrap_or("N/A"),
        });
        if let Some(v) = sizes.get(&mount) {
            // %S frsize, %s bsize, %b blocks, %f bfree, %a bavail, %c files, %d ffree
            let (frsize, bsize, blocks, bavail, files, ffree) =
                (v[0], v[1], v[2], v[4], v[5], v[6]);
            let o = m.as_object_mut().expect("object");
            o.insert("size_total".into(), json!(frsize * blocks));
            o.insert("size_available".into(), json!(frsize * bavail));
            o.insert("block_size".into(), json!(bsize));
            o.insert("block_total".into(), json!(blocks));
            o.insert("block_available".into(), json!(bavail));
            o.insert("block_used".into(), json!(blocks.saturating_sub(bavail)));
            o.insert("inode_total".into(), json!(files));
            o.insert("inode_available".into(), json!(ffree));
            o.insert("inode_used".into(), json!(files.saturating_sub(ffree)));
        }
        list.push(m);
    }
    Value::Array(list)
}

/// Ansible's `bytes_to_human`: two decimals, binary units (`0.00 Bytes`, `1.50 KB`, `20.00 GB`).
pub(super) fn bytes_to_human(size: f64) -> String {
    const UNITS: [(&str, u32); 8] = [
        ("YB", 80),
        ("ZB", 70),
        ("EB", 60),
        ("PB", 50),
        ("TB", 40),
        ("GB", 30),
        ("MB", 20),
        ("KB", 10),
    ];
    for (u, shift) in UNITS {
        let limit = 2f64.powi(shift as i32);
        if size >= limit {
            return format!("{:.2} {u}", size / limit);
        }
    }
    format!("{size:.2} Bytes")
}

/// `ansible_devices` and `ansible_device_links`.
pub(super) fn devices(out: &str) -> (Value, Value) {
    // links[type][device] = [names]; type is ids/uuids/labels/masters
    let mut links: BTreeMap<&str, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for t in ["ids", "uuids", "labels", "masters"] {
        links.insert(t, BTreeMap::new());
    }
    for l in lines(out, "link=") {
        let f: Vec<&str> = l.splitn(3, '|').collect();
        if f.len() == 3 {
            let t = match f[0] {
                "id" => "ids",
                "uuid" => "uuids",
                _ => "labels",
            };
            let e = links.get_mut(t).expect("type").entry(f[2].to_string());
            e.or_default().push(unescape(f[1]));
        }
    }
    for l in lines(out, "master=") {
        if let Some((slave, master)) = l.split_once('|') {
            let m = links.get_mut("masters").expect("masters");
            m.entry(slave.to_string())
                .or_default()
                .push(master.to_string());
        }
    }
    let link_of = |name: &str| -> Value {
        let mut m = Map::new();
        for (t, by) in &links {
            m.insert(
                (*t).into(),
                json!(by.get(name).cloned().unwrap_or_default()),
            );
        }
        Value::Object(m)
    };
    // The sysfs values (`devf=NAME|FILE|VALUE`, `partf=…`) and holders (`devh=NAME|HOLDER`,
    // `parth=…`), indexed once: a host may have dozens of devices.
    let mut files: BTreeMap<(&str, &str, &str), String> = BTreeMap::new();
    for prefix in ["devf=", "partf="] {
        for l in lines(out, prefix) {
            let mut it = l.splitn(3, '|');
            if let (Some(n), Some(f), Some(v)) = (it.next(), it.next(), it.next()) {
                files.insert((prefix, n, f), v.trim().to_string());
            }
        }
    }
    let mut held: BTreeMap<(&str, &str), Vec<String>> = BTreeMap::new();
    for prefix in ["devh=", "parth="] {
        for (n, h) in lines(out, prefix).filter_map(|l| l.split_once('|')) {
            held.entry((prefix, n)).or_default().push(h.to_string());
        }
    }
    let file = |prefix: &str, name: &str, f: &str| files.get(&(prefix, name, f)).cloned();
    let holders = |prefix: &str, name: &str| held.get(&(prefix, name)).cloned().unwrap_or_default();
    let mut devs = Map::new();
    for l in lines(out, "dev=") {
        let Some((n, virt)) = l.split_once('|') else {
            continue;
        };
        let dv = |f: &str| file("devf=", n, f);
        let sectorsize = dv("queue/logical_block_size")
            .or_else(|| dv("queue/hw_sector_size"))
            .unwrap_or_else(|| "512".into());
        let ss: u64 = sectorsize.parse().unwrap_or(512).max(1);
        let sectors = dv("size").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) * 512 / ss;
        let scheduler = dv("queue/scheduler")
            .and_then(|s| {
                let a = s.find('[')?;
                let b = s[a..].find(']')? + a;
                Some(s[a + 1..b].to_string())
            })
            .unwrap_or_default();
        let discard = if dv("queue/discard_max_hw_bytes").as_deref() == Some("0") {
            Some("0".to_string())
        } else {
            dv("queue/discard_granularity")
        };
        let mut parts = Map::new();
        for pl in lines(out, "part=").filter_map(|l| l.strip_prefix(&format!("{n}|"))) {
            let pf = |f: &str| file("partf=", pl, f);
            let psectors = pf("size").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) * 512 / ss;
            let uuid = links["uuids"]
                .get(pl)
                .and_then(|v| v.first().cloned())
                .map(Value::from)
                .unwrap_or(Value::Null);
            parts.insert(
                pl.to_string(),
                json!({
                    "links": link_of(pl),
                    "start": pf("start").unwrap_or_else(|| "0".into()),
                    "sectors": psectors,
                    "sectorsize": ss,
                    "size": bytes_to_human((psectors * ss) as f64),
                    "uuid": uuid,
                    "holders": holders("parth=", pl),
                }),
            );
        }
        let mut d = json!({
            "virtual": if virt == "1" { 1 } else { 0 },
            "links": link_of(n),
            "vendor": dv("device/vendor"),
            "model": dv("device/model"),
            "sas_address": dv("device/sas_address"),
            "sas_device_handle": dv("device/sas_device_handle"),
            "removable": dv("removable"),
            "support_discard": discard,
            "partitions": parts,
            "rotational": dv("queue/rotational"),
            "scheduler_mode": scheduler,
            "sectorsize": sectorsize,
            "sectors": sectors,
            "size": bytes_to_human((sectors * ss) as f64),
            "host": "",
            "holders": holders("devh=", n),
        });
        if let Some(s) = dv("device/serial") {
            d["serial"] = json!(s);
        }
        devs.insert(n.to_string(), d);
    }
    let mut all = Map::new();
    for (t, by) in &links {
        all.insert((*t).into(), json!(by));
    }
    (Value::Object(devs), Value::Object(all))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_ansible_prints_them() {
        assert_eq!(bytes_to_human(0.0), "0.00 Bytes");
        assert_eq!(bytes_to_human(1536.0), "1.50 KB");
        assert_eq!(bytes_to_human(20.0 * 1073741824.0), "20.00 GB");
    }

    #[test]
    fn mounts_take_sizes_binds_and_uuids() {
        let out = "mnt=/dev/vda / ext4 rw,relatime 0 0\nmnt=/dev/vda /my\\040dir ext4 rw 0 0\n\
                   mst=/|4096 4096 100 50 40 1000 900\nmst=/my dir|4096 4096 10 5 4 100 90\n\
                   bind=/my\\x20dir\nbind=/my\\040dir\nuuid=/dev/vda 1234-ab\n";
        let m = mounts(out);
        assert_eq!(m[0]["mount"], "/");
        assert_eq!(m[0]["size_total"], 409600);
        assert_eq!(m[0]["size_available"], 163840);
        assert_eq!(m[0]["block_used"], 60);
        assert_eq!(m[0]["inode_used"], 100);
        assert_eq!(m[0]["uuid"], "1234-ab");
        assert_eq!(m[1]["mount"], "/my dir");
        assert_eq!(m[1]["options"], "rw,bind");
        assert_eq!(m[1]["block_total"], 10);
    }

    #[test]
    fn devices_with_partitions_links_and_holders() {
        let out = "dev=vda|1\ndevf=vda|size|41943040\ndevf=vda|queue/logical_block_size|512\n\
                   devf=vda|queue/scheduler|mq-deadline [none]\ndevf=vda|removable|0\n\
                   devf=vda|queue/rotational|1\ndevf=vda|queue/discard_max_hw_bytes|0\n\
                   part=vda|vda1\npartf=vda1|start|2048\npartf=vda1|size|2097152\n\
                   parth=vda1|dm-0\nmaster=vda1|dm-0\nlink=uuid|abcd-1|vda1\nlink=id|virtio-x|vda\n";
        let (d, links) = devices(out);
        let v = &d["vda"];
        assert_eq!(v["sectors"], 41943040);
        assert_eq!(v["size"], "20.00 GB");
        assert_eq!(v["scheduler_mode"], "none");
        assert_eq!(v["support_discard"], "0");
        assert_eq!(v["model"], Value::Null);
        assert_eq!(v["links"]["ids"], json!(["virtio-x"]));
        let p = &v["partitions"]["vda1"];
        assert_eq!(p["start"], "2048");
        assert_eq!(p["size"], "1.00 GB");
        assert_eq!(p["uuid"], "abcd-1");
        assert_eq!(p["holders"], json!(["dm-0"]));
        assert_eq!(p["links"]["masters"], json!(["dm-0"]));
        assert_eq!(links["uuids"]["vda1"], json!(["abcd-1"]));
    }
}
