fn main() {
    std::process::exit(duet::cli::run());
}
