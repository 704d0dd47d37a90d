fn main() {
    if let Err(err) = bragg::cli::run() {
        eprintln!("error: {err}");
        std::process::exit(1);
    }
}
