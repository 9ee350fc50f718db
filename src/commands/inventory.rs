use crate::cli::inventory::InventoryArgs;
use crate::ops::inventory::{inventory, InventoryOpts, InventoryView};
use serde_json::Value;

pub fn run(a: InventoryArgs) -> anyhow::Result<i32> {
    let opts = InventoryOpts {
        sources: a.inventory,
        playbook_dir: a.playbook_dir,
        host: a.host,
        graph: a
            .graph
            .then(|| a.group.unwrap_or_else(|| "all".to_string())),
        json: a.json,
        show_vars: a.show_vars,
        limit: a.limit,
    };
    let r = inventory(&opts)?;
    for w in &r.warnings {
        eprintln!("[WARNING]: {w}");
    }
    match r.view {
        InventoryView::Graph(g) => println!("{g}"),
        InventoryView::HostVars(v) | InventoryView::Groups(v) | InventoryView::List(v) => {
            println!("{}", ansible_json(&v))
        }
    }
    Ok(0)
}

/// JSON as `ansible-inventory` prints it: keys sorted, 4-space indent.
fn ansible_json(v: &Value) -> String {
    use serde::Serialize;
    let sorted = sort_keys(v);
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    sorted
        .serialize(&mut ser)
        .expect("serialising JSON to memory");
    String::from_utf8(buf).expect("serde_json writes UTF-8")
}

fn sort_keys(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = serde_json::Map::new();
            for k in keys {
                out.insert(k.clone(), sort_keys(&m[k]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(sort_keys).collect()),
        other => other.clone(),
    }
}
