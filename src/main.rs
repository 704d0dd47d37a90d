fn main() {
    if let Err(err) = bragg::dist::init() {
        eprintln!("error: {err}");
        std::process::exit(1);
    }
    if let Err(err) = bragg::cli::run() {
        let w = bragg::dist::world();
        if w.size() > 1 {
            eprintln!("error on {}: {err}", w.describe());
        } else {
            eprintln!("error: {err}");
        }
        bragg::dist::finish(false, 1);
        std::process::exit(1);
    }
    bragg::dist::finish(true, 0);
}
