//! The reports' command lines: `--name NUMBER` pairs, read one way by every report.

/// One `--name NUMBER` pair of a report's arguments.
pub struct Flag {
    pub name: String,
    pub value: u64,
}

/// `argv` as `--name NUMBER` pairs; a flag without a number ends the report with a usage error.
pub fn numbers(argv: Vec<String>) -> impl Iterator<Item = Flag> {
    let mut it = argv.into_iter();
    std::iter::from_fn(move || {
        let name = it.next()?;
        let Some(value) = it.next().and_then(|v| v.parse().ok()) else {
            eprintln!("{name} needs a number");
            std::process::exit(2)
        };
        Some(Flag { name, value })
    })
}

/// Ends the report with a usage error naming the flags it takes.
pub fn unknown(name: &str, known: &str) -> ! {
    eprintln!("unknown flag {name} ({known})");
    std::process::exit(2)
}
