fn main() {
    println!("bragg");
}
