//! `duet cloud`: list and add cloud profiles, store a key in the OS keyring.

use super::*;

#[derive(Subcommand, Debug)]
pub enum CloudCommand {
    /// The cloud profiles and where each one's key comes from.
    List,
    /// Add (or replace) a profile.
    Add {
        name: String,
        #[arg(long)]
        base_url: String,
        #[arg(long)]
        model: String,
        /// Environment variable that holds the key.
        #[arg(long)]
        key_env: Option<String>,
    },
    /// Store a profile's key in the OS keyring (read from standard input).
    Key { name: String },
}

pub fn cloud(paths: &Paths, cmd: CloudCommand) -> Result<()> {
    let mut settings = Settings::load(paths)?;
    match cmd {
        CloudCommand::List => {
            for p in &settings.cloud {
                let var = p.key_env.as_deref().unwrap_or("OPENAI_API_KEY");
                let key = if std::env::var(var).is_ok_and(|v| !v.trim().is_empty()) {
                    format!("key from ${var}")
                } else if crate::engine::cloud::resolve_key(p).is_some() {
                    "key from the keyring or settings".to_string()
                } else {
                    format!("no key (set ${var} or run `duet cloud key {}`)", p.name)
                };
                println!("{:<12} {:<40} {:<20} {key}", p.name, p.base_url, p.model);
            }
        }
        CloudCommand::Add { name, base_url, model, key_env } => {
            if reqwest::Url::parse(&base_url).is_err() {
                bail!("'{base_url}' is not a URL; it should look like https://api.openai.com/v1");
            }
            settings.cloud.retain(|p| p.name != name);
            settings.cloud.push(crate::config::CloudProfile {
                name: name.clone(),
                base_url,
                model,
                key_env,
                key: None,
                usd_per_m_input: 0.0,
                usd_per_m_output: 0.0,
            });
            settings.save(paths)?;
            println!("saved cloud profile '{name}' in {}", paths.settings_file().display());
        }
        CloudCommand::Key { name } => {
            if settings.profile(&name).is_none() {
                bail!("there is no cloud profile '{name}'; see `duet cloud list`");
            }
            eprintln!("Paste the key for '{name}' and press Enter (it is not shown or saved anywhere else):");
            let mut key = String::new();
            std::io::stdin().read_line(&mut key)?;
            let key = crate::secret::Secret::new(key.trim());
            if key.is_empty() {
                bail!("no key given; nothing stored");
            }
            crate::engine::cloud::keyring_set(&name, &key).map_err(anyhow::Error::msg)?;
            println!("stored the key for '{name}' in the OS keyring");
        }
    }
    Ok(())
}
