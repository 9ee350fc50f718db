use crate::cli::bundle::KeygenArgs;
use crate::ops::keys::keygen;
use crate::ui::Hint;
use anyhow::Context;
use std::io::IsTerminal;

/// Password from DARKPORT_KEY_PASSWORD, else a prompt on a terminal.
pub(crate) fn password(confirm: bool) -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("DARKPORT_KEY_PASSWORD") {
        if !p.is_empty() {
            return Ok(p);
        }
    }
    if !std::io::stdin().is_terminal() {
        return Err(anyhow::anyhow!(
            "no password: DARKPORT_KEY_PASSWORD is not set and stdin is not a terminal"
        ))
        .context(Hint(
            "set DARKPORT_KEY_PASSWORD (or use --no-password for keygen)".into(),
        ));
    }
    let p = rpassword::prompt_password("key password: ").context("failed to read the password")?;
    if confirm {
        let p2 = rpassword::prompt_password("key password (again): ")
            .context("failed to read the password")?;
        if p != p2 {
            anyhow::bail!("the passwords do not match");
        }
    }
    if p.is_empty() {
        anyhow::bail!("empty password (use --no-password for an unencrypted key)");
    }
    Ok(p)
}

pub fn run(a: KeygenArgs) -> anyhow::Result<i32> {
    let pw = if a.no_password {
        None
    } else {
        Some(password(true)?)
    };
    let r = keygen(&a.out, pw, a.force)?;
    println!(
        "secret key: {} ({})",
        r.secret_key.display(),
        if r.encrypted {
            "password-protected"
        } else {
            "NOT password-protected"
        }
    );
    println!("public key: {}", r.public_key.display());
    println!("key id:     {}", r.key_id);
    Ok(0)
}
