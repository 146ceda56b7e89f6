//! `netproto keygen` and `netproto cert`: static keys and development
//! certificates, written with private files 0600 and never over existing
//! ones unless asked.

use std::path::{Path, PathBuf};

use netproto::{DevCa, Keypair, Validity};

use crate::{err, Failure};

pub(crate) fn keygen(out: &Path) -> Result<(), Failure> {
    let key = Keypair::generate(&mut rand::rngs::OsRng);
    key.save(out).map_err(err)?;
    println!("wrote {} (mode 0600)", out.display());
    println!("public key  {}", key.public());
    println!("fingerprint {}", key.public().fingerprint());
    Ok(())
}

fn refuse_overwrite(paths: &[PathBuf], force: bool) -> Result<(), Failure> {
    if force {
        return Ok(());
    }
    if let Some(p) = paths.iter().find(|p| p.exists()) {
        return Err(err(netproto::TlsError::File {
            path: p.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "exists; pass --force to overwrite",
            ),
        }));
    }
    Ok(())
}

pub(crate) fn cert(
    out: &Path,
    sans: &[String],
    with_ca: bool,
    days: u64,
    force: bool,
) -> Result<(), Failure> {
    std::fs::create_dir_all(out).map_err(|source| {
        err(netproto::TlsError::File {
            path: out.to_path_buf(),
            source,
        })
    })?;
    let validity = Validity::days(days);
    let (server_pem, server_key) = (out.join("server.pem"), out.join("server.key"));
    if !with_ca {
        refuse_overwrite(&[server_pem.clone(), server_key.clone()], force)?;
        let generated = netproto::self_signed(
            sans.first().map_or("localhost", String::as_str),
            sans,
            validity,
        )
        .map_err(err)?;
        generated.write(&server_pem, &server_key).map_err(err)?;
        println!(
            "wrote {} and {} (key mode 0600)",
            server_pem.display(),
            server_key.display()
        );
        if let Some(pin) = generated.spki_pin() {
            println!("pin  {pin}");
        }
        println!(
            "serve:   netproto serve --address tls://127.0.0.1:9443 --tls-cert {} --tls-key {}",
            server_pem.display(),
            server_key.display()
        );
        println!(
            "connect: netproto ping tls://localhost:9443 --ca {}",
            server_pem.display()
        );
        return Ok(());
    }
    let (ca_pem, client_pem, client_key) = (
        out.join("ca.pem"),
        out.join("client.pem"),
        out.join("client.key"),
    );
    refuse_overwrite(
        &[
            ca_pem.clone(),
            server_pem.clone(),
            server_key.clone(),
            client_pem.clone(),
            client_key.clone(),
        ],
        force,
    )?;
    let ca = DevCa::new("netproto development CA").map_err(err)?;
    let server = ca.issue_server(sans, validity).map_err(err)?;
    let client = ca.issue_client("netproto client", validity).map_err(err)?;
    std::fs::write(&ca_pem, &ca.certificate().cert_pem).map_err(|source| {
        err(netproto::TlsError::File {
            path: ca_pem.clone(),
            source,
        })
    })?;
    server.write(&server_pem, &server_key).map_err(err)?;
    client.write(&client_pem, &client_key).map_err(err)?;
    for p in [&ca_pem, &server_pem, &server_key, &client_pem, &client_key] {
        println!("wrote {}", p.display());
    }
    println!("(the CA's private key is not kept: run again to issue more)");
    if let Some(pin) = server.spki_pin() {
        println!("server pin  {pin}");
    }
    println!(
        "serve:   netproto serve --address tls://127.0.0.1:9443 --tls-cert {} --tls-key {} --client-ca {}",
        server_pem.display(),
        server_key.display(),
        ca_pem.display()
    );
    println!(
        "connect: netproto ping tls://localhost:9443 --ca {} --client-cert {} --client-key {}",
        ca_pem.display(),
        client_pem.display(),
        client_key.display()
    );
    Ok(())
}
