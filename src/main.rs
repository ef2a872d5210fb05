fn main() {
    println!("cuda: {} devices {}", tch::Cuda::is_available(), tch::Cuda::device_count());
}
