//! `lifeline-collector`: the help-desk server and the technician/admin client (being built).

fn main() -> std::process::ExitCode {
    eprintln!("lifeline-collector: the collector is not part of this build yet");
    std::process::ExitCode::FAILURE
}
