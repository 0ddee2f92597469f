//! `lifeline-collector`: the help-desk server and the technician/admin client.

fn main() {
    eprintln!("lifeline-collector: not built yet");
    std::process::exit(2);
}
