fn main() {
    let mut failed = 0;
    let mut total = 0;
    for entry in std::fs::read_dir(std::env::args().nth(1).unwrap()).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        total += 1;
        let opts = caravan_jobspec::ParseOptions {
            file_name: path.file_name().unwrap().to_string_lossy().into(),
            ..Default::default()
        };
        if let Err(e) = caravan_jobspec::parse(&text, &opts) {
            failed += 1;
            println!("{e}");
        }
    }
    println!("{failed}/{total} failed");
}
