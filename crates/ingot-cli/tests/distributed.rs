//! Data-parallel training over real MPI ranks: `mpirun -np N ingot pretrain ...` with OpenMPI
//! (Debian's `openmpi-bin`, installed by `scripts/test`), an Ingot built with `--features mpi`.
//!
//! - 2 ranks, plain data parallel and ZeRO-1, against one process on the same global batch
//!   (20 AdamW steps): parameters, AdamW moments, logged losses and gradient norms equal within
//!   1e-5, and a negative control (each rank's gradient the mean of its own share, summed over
//!   ranks: no divide by the world size) that the comparison catches;
//! - a ZeRO-1 run stopped on 2 ranks and resumed on 1, and the reverse, ends where the
//!   uninterrupted run ends;
//! - a rank killed with SIGKILL ends the job within 10 s, naming the rank, and the last
//!   checkpoint still loads; an error on every rank ends the job with the message.
//!
//! - two hosts for real: two network namespaces joined by a veth pair (iproute2), one rank in
//!   each, MPI over TCP between them, the same equivalence (needs root for `ip netns`; without
//!   it the test says so and does nothing).
#![cfg(feature = "mpi")]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use ingot_test_support::cli::Run;

const BIN: &str = env!("CARGO_BIN_EXE_ingot");

/// The largest parameter difference the equivalence allows.
const TOLERANCE: f32 = 1e-5;

/// `mpirun -np N ingot ARGS` (one thread per rank), with extra environment passed to the ranks.
fn mpirun(np: usize, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = mpirun_command(np, args, env);
    let out = cmd.output().expect("cannot start mpirun (apt install openmpi-bin)");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn mpirun_command(np: usize, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new("mpirun");
    // Root in containers and CI; oversubscribing lets 2 ranks run on a 1-core machine.
    cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env_remove("INGOT_HOME")
        .env_remove("INGOT_LOG")
        .args(["-np", &np.to_string(), "--bind-to", "none", "--oversubscribe"]);
    for (k, v) in env {
        cmd.env(k, v).args(["-x", k]);
    }
    cmd.arg(BIN).args(args).args(["--threads", "1"]);
    cmd.stdin(Stdio::null());
    cmd
}

fn single(args: &[&str]) -> Run {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--threads", "1"]);
    ingot_test_support::cli::run(BIN, &all)
}

/// A tiny GPT over the mercy corpus: 2 micro-batches per step (the global batch), dropout on.
fn setup(tag: &str) -> (ingot_test_support::TempDir, PathBuf) {
    let dir = ingot_test_support::temp_dir(&format!("cli-mpi-{tag}"));
    let corpus = ingot_test_support::write_txt(&dir.join("corpus"), &ingot_test_support::mercy_corpus());
    let train = "max_steps = 20\ngrad_accum = 2\nwarmup_steps = 2\ndecay_steps = 20\nlr = 3e-3\nmin_lr = 3e-4\n\
                 eval_interval = 10\ncheckpoint_interval = 10\nlog_interval = 1\nkeep_last = 3";
    let config = dir.join("tiny.toml");
    let mut text = ingot_test_support::tiny_pretrain_toml(&corpus, 32, train);
    text = text.replace("[model]\n", "[model]\nresid_pdrop = 0.1\nembd_pdrop = 0.1\n");
    std::fs::write(&config, text).unwrap();
    (dir, config)
}

fn tensors(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The largest |a - b| over every tensor of two safetensors files with the same names.
fn max_diff(a: &Path, b: &Path) -> f32 {
    let (a, b) = (tensors(a), tensors(b));
    assert_eq!(
        a.keys().collect::<std::collections::BTreeSet<_>>(),
        b.keys().collect::<std::collections::BTreeSet<_>>(),
        "the two files hold different tensors"
    );
    a.iter()
        .map(|(k, x)| {
            let d = (x - &b[k]).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap();
            d.to_scalar::<f32>().unwrap()
        })
        .fold(0.0, f32::max)
}

fn step_dir(run: &Path, step: u32) -> PathBuf {
    run.join(format!("step-{step:08}"))
}

#[test]
fn two_ranks_data_parallel_and_zero1_equal_one_process() {
    let (dir, config) = setup("equal");
    let config = config.to_str().unwrap();
    let one = dir.join("one");
    single(&["pretrain", "--config", config, "--out", one.to_str().unwrap()]).ok();
    let last = step_dir(&one, 20);

    for (name, extra) in [("ddp", "0"), ("zero1", "1")] {
        let out = dir.join(name);
        let set = format!("train.zero_stage={extra}");
        let run = mpirun(2, &["pretrain", "--config", config, "--out", out.to_str().unwrap(), "--set", &set], &[]).ok();
        // Rank 0 alone prints the result.
        assert_eq!(run.stdout.matches("trained 20 steps").count(), 1, "{}", run.dump());
        let d = max_diff(&last.join("model.safetensors"), &step_dir(&out, 20).join("model.safetensors"));
        assert!(d <= TOLERANCE, "{name}: parameters differ from one process by {d}");
        // The checkpoint holds the whole optimizer state (ZeRO-1: gathered from both ranks).
        let m = max_diff(&last.join("optimizer.safetensors"), &step_dir(&out, 20).join("optimizer.safetensors"));
        assert!(m <= TOLERANCE, "{name}: AdamW moments differ from one process by {m}");
        // The logged loss and gradient norm are the global ones, as in one process.
        for key in ["loss", "grad_norm"] {
            let (a, b) = (logged(&one, key), logged(&out, key));
            assert_eq!(a.len(), b.len());
            assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() <= 1e-5 * x.abs()), "{name} {key}: {a:?}\n{b:?}");
        }
    }

    // Negative control: a sum where the mean belongs (each rank's gradient the mean of its own
    // share). AdamW divides each update by the root of its second moment, so a gradient W times
    // too large moves the parameters almost exactly as the right one does (only eps tells them
    // apart): the parameters alone barely show this bug. The gradient norm, which clipping and
    // every later step depend on, shows it at once.
    let out = dir.join("sum");
    mpirun(2, &["pretrain", "--config", config, "--out", out.to_str().unwrap()], &[("INGOT_TEST_DDP_SUM", "1")]).ok();
    let (a, b) = (logged(&one, "grad_norm"), logged(&out, "grad_norm"));
    assert!(
        a.iter().zip(&b).all(|(x, y)| (y / x - 2.0).abs() < 1e-3),
        "the negative control went unnoticed: {a:?}\n{b:?}"
    );
    let d = max_diff(&last.join("model.safetensors"), &step_dir(&out, 20).join("model.safetensors"));
    assert!(d > 0.0, "the negative control left the parameters bit-identical");
    eprintln!("negative control: gradient norms 2x, parameters differ by up to {d:.2e}");
}

/// One field of every line of a run's metrics.jsonl.
fn logged(run: &Path, key: &str) -> Vec<f64> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()[key].as_f64().unwrap())
        .collect()
}

#[test]
fn zero1_resumes_on_another_number_of_ranks() {
    let (dir, config) = setup("resume");
    let config = config.to_str().unwrap();
    let whole = dir.join("whole");
    mpirun(2, &["pretrain", "--config", config, "--out", whole.to_str().unwrap(), "--set", "train.zero_stage=1"], &[])
        .ok();
    let end = step_dir(&whole, 20).join("model.safetensors");
    let half = ["--set", "train.max_steps=10", "--set", "train.zero_stage=1"];
    let resume = ["--resume", "--set", "train.zero_stage=1"];

    // Two ranks, then one.
    let a = dir.join("two-then-one");
    let a_s = a.to_str().unwrap();
    mpirun(2, &[&["pretrain", "--config", config, "--out", a_s][..], &half].concat(), &[]).ok();
    single(&[&["pretrain", "--config", config, "--out", a_s][..], &resume].concat()).ok();
    let d = max_diff(&end, &step_dir(&a, 20).join("model.safetensors"));
    assert!(d <= TOLERANCE, "2 ranks then 1: parameters differ from the uninterrupted run by {d}");

    // One rank, then two.
    let b = dir.join("one-then-two");
    let b_s = b.to_str().unwrap();
    single(&[&["pretrain", "--config", config, "--out", b_s][..], &half].concat()).ok();
    mpirun(2, &[&["pretrain", "--config", config, "--out", b_s][..], &resume].concat(), &[]).ok();
    let d = max_diff(&end, &step_dir(&b, 20).join("model.safetensors"));
    assert!(d <= TOLERANCE, "1 rank then 2: parameters differ from the uninterrupted run by {d}");
}

#[test]
fn a_killed_rank_ends_the_job_within_seconds_and_the_checkpoint_loads() {
    let (dir, config) = setup("kill");
    let out = dir.join("run");
    let long = ["--set", "train.max_steps=100000", "--set", "train.checkpoint_interval=20"];
    let args: Vec<&str> =
        [&["pretrain", "--config", config.to_str().unwrap(), "--out", out.to_str().unwrap()][..], &long].concat();
    let mut child = mpirun_command(2, &args, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start mpirun");
    // Wait for a checkpoint, then kill rank 1 (the mpirun child whose environment says so).
    let started = Instant::now();
    while !out.join("latest").exists() {
        assert!(started.elapsed() < Duration::from_secs(60), "no checkpoint after 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let rank1 = rank_pid(child.id(), 1).expect("rank 1's process not found under mpirun");
    // SAFETY: kill(2) on a process this test started.
    unsafe {
        libc::kill(rank1 as i32, libc::SIGKILL);
    }
    let killed = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if killed.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("the job still runs 10 s after rank 1 was killed");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let ended_after = killed.elapsed();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout);
    assert!(!status.success(), "mpirun exited 0 after a rank was killed");
    assert!(stderr.contains("rank 1"), "the message should name rank 1:\n{stderr}");
    // The last checkpoint is whole: it evaluates.
    let eval =
        single(&["pretrain", "--config", config.to_str().unwrap(), "--out", out.to_str().unwrap(), "--eval-only"]);
    assert!(eval.ok().stdout.contains("validation loss"));
    eprintln!("rank 1 killed: the job ended {:.2} s later, exit {status}", ended_after.as_secs_f64());
}

#[test]
fn an_error_on_the_ranks_ends_the_job_with_its_message() {
    let (dir, config) = setup("error");
    let out = dir.join("run");
    // One micro-batch cannot be shared by two ranks.
    let run = mpirun(
        2,
        &[
            "pretrain",
            "--config",
            config.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--set",
            "train.grad_accum=1",
        ],
        &[],
    );
    assert_ne!(run.code, 0, "{}", run.dump());
    assert!(run.stderr.contains("grad_accum must be at least 2"), "{}", run.dump());
    assert!(run.stderr.contains("rank 0 of 2") || run.stderr.contains("rank 1 of 2"), "{}", run.dump());
}

/// The pid of the process under `mpirun_pid` whose environment has OMPI_COMM_WORLD_RANK=rank.
fn rank_pid(mpirun_pid: u32, rank: usize) -> Option<u32> {
    let want = format!("OMPI_COMM_WORLD_RANK={rank}");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // Field 4 (after the parenthesised name) is the parent pid.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid != Some(mpirun_pid) {
            continue;
        }
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if env.split(|&b| b == 0).any(|kv| kv == want.as_bytes()) {
            return Some(pid);
        }
    }
    None
}

/// Two network namespaces joined by a veth pair, removed on drop.
struct TwoHosts {
    names: [String; 2],
    ips: [&'static str; 2],
}

impl TwoHosts {
    /// The reason, where namespaces cannot be made (not root, no iproute2).
    fn new() -> Result<Self, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root".into());
        }
        let id = std::process::id() % 100_000;
        let hosts =
            TwoHosts { names: [format!("ingot-a{id}"), format!("ingot-b{id}")], ips: ["10.231.7.1", "10.231.7.2"] };
        let (a, b) = (&hosts.names[0], &hosts.names[1]);
        let (va, vb) = (format!("vi-a{id}"), format!("vi-b{id}"));
        let steps: Vec<Vec<String>> = vec![
            vec!["netns".into(), "add".into(), a.clone()],
            vec!["netns".into(), "add".into(), b.clone()],
            vec![
                "link".into(),
                "add".into(),
                va.clone(),
                "type".into(),
                "veth".into(),
                "peer".into(),
                "name".into(),
                vb.clone(),
            ],
            vec!["link".into(), "set".into(), va.clone(), "netns".into(), a.clone()],
            vec!["link".into(), "set".into(), vb.clone(), "netns".into(), b.clone()],
            vec![
                "-n".into(),
                a.clone(),
                "addr".into(),
                "add".into(),
                format!("{}/24", hosts.ips[0]),
                "dev".into(),
                va.clone(),
            ],
            vec![
                "-n".into(),
                b.clone(),
                "addr".into(),
                "add".into(),
                format!("{}/24", hosts.ips[1]),
                "dev".into(),
                vb.clone(),
            ],
            vec!["-n".into(), a.clone(), "link".into(), "set".into(), "lo".into(), "up".into()],
            vec!["-n".into(), b.clone(), "link".into(), "set".into(), "lo".into(), "up".into()],
            vec!["-n".into(), a.clone(), "link".into(), "set".into(), va, "up".into()],
            vec!["-n".into(), b.clone(), "link".into(), "set".into(), vb, "up".into()],
        ];
        for args in steps {
            let out = Command::new("ip").args(&args).output().map_err(|e| format!("ip: {e}"))?;
            if !out.status.success() {
                return Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
            }
        }
        Ok(hosts)
    }

    /// OpenMPI's remote launcher for these hosts: `agent HOST COMMAND...` runs COMMAND in that
    /// host's namespace (what ssh does between machines).
    fn agent(&self, dir: &Path) -> PathBuf {
        let path = dir.join("netns-agent.sh");
        let script = format!(
            "#!/bin/sh\nhost=$1; shift\ncase $host in\n  {}) ns={} ;;\n  {}) ns={} ;;\n  *) echo \"unknown host $host\" >&2; exit 1 ;;\nesac\nexec ip netns exec $ns sh -c \"$*\"\n",
            self.ips[0], self.names[0], self.ips[1], self.names[1]
        );
        std::fs::write(&path, script).unwrap();
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&path, perms).unwrap();
        path
    }
}

impl Drop for TwoHosts {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

#[test]
fn two_hosts_over_tcp_equal_one_process() {
    let hosts = match TwoHosts::new() {
        Ok(h) => h,
        Err(why) => {
            eprintln!("SKIPPED two_hosts_over_tcp_equal_one_process: cannot make network namespaces ({why})");
            return;
        }
    };
    let (dir, config) = setup("two-hosts");
    let config = config.to_str().unwrap();
    let one = dir.join("one");
    single(&["pretrain", "--config", config, "--out", one.to_str().unwrap()]).ok();
    let out = dir.join("two-hosts");
    let agent = hosts.agent(dir.path());
    let subnet = "10.231.7.0/24";
    let host_list = format!("{},{}", hosts.ips[0], hosts.ips[1]);
    // mpirun runs in the first host's namespace and starts the second host's daemon through the
    // agent; ranks talk over TCP on the veth pair only.
    let output = Command::new("ip")
        .args(["netns", "exec", &hosts.names[0], "mpirun", "-np", "2", "--host", &host_list])
        .args(["--mca", "plm_rsh_agent", agent.to_str().unwrap(), "--mca", "btl", "tcp,self"])
        .args(["--mca", "btl_tcp_if_include", subnet, "--mca", "oob_tcp_if_include", subnet, "--bind-to", "none"])
        .arg(BIN)
        .args(["pretrain", "--config", config, "--out", out.to_str().unwrap(), "--threads", "1"])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
    .ok();
    let share = run.stdout.lines().find(|l| l.contains("in collectives")).unwrap_or("").to_string();
    let d = max_diff(&step_dir(&one, 20).join("model.safetensors"), &step_dir(&out, 20).join("model.safetensors"));
    assert!(d <= TOLERANCE, "two hosts: parameters differ from one process by {d}");
    eprintln!("two hosts over TCP: max parameter difference {d:.2e}; {share}");
}

#[test]
fn qlora_sft_of_the_real_model_on_two_ranks_equals_one_process() {
    let Some(model) = ingot_test_support::real_model() else { return };
    let model = model.display().to_string();
    let dir = ingot_test_support::temp_dir("cli-mpi-sft");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/sft-tools.toml");
    let sets = [
        "data.generate.train=6",
        "data.generate.val=2",
        "data.generate.few_shot=2",
        "train.max_steps=2",
        "train.warmup_steps=1",
        "train.lr=3e-3",
        "train.eval_interval=0",
        "train.grad_accum=2",
    ];
    let args = |out: &Path| -> Vec<String> {
        let mut a: Vec<String> =
            ["sft", "--config", config, "--model", &model, "--out", out.to_str().unwrap()].map(String::from).to_vec();
        for s in sets {
            a.extend(["--set".to_string(), s.to_string()]);
        }
        a
    };
    let (one, two) = (dir.join("one"), dir.join("two"));
    let a = args(&one);
    single(&a.iter().map(String::as_str).collect::<Vec<_>>()).ok();
    let b = args(&two);
    mpirun(2, &b.iter().map(String::as_str).collect::<Vec<_>>(), &[]).ok();
    // The data rank 0 generated is what both trained on; the adapters (LoRA dropout on) agree.
    let file = "adapter/adapter_model.safetensors";
    let d = max_diff(&one.join(file), &two.join(file));
    assert!(d <= TOLERANCE, "QLoRA adapters differ between 1 process and 2 ranks by {d}");
}

/// DPO on 2 ranks equals one process: the reference log-probabilities, which the ranks share out
/// batch by batch and exchange, and then the training (tiny llama, LoRA with dropout, 2
/// micro-batches per step).
#[test]
fn dpo_on_two_ranks_shares_the_reference_and_equals_one_process() {
    use ingot_test_support::models::{write_model_folder, LLAMA};
    let dir = ingot_test_support::temp_dir("cli-mpi-dpo");
    let hf = write_model_folder(&dir.join("hf"), LLAMA, 5);
    let pairs = |path: &Path, n: usize, offset: usize| {
        let lines: Vec<String> = (offset..offset + n)
            .map(|i| {
                let rejected = " bad".repeat(1 + i % 3);
                serde_json::json!({"prompt": format!("Q{i}: rate item {}.", i * 7 % 13), "chosen": " good.", "rejected": rejected})
                    .to_string()
            })
            .collect();
        std::fs::write(path, lines.join("\n")).unwrap();
    };
    let (train, val) = (dir.join("train.jsonl"), dir.join("val.jsonl"));
    pairs(&train, 13, 0); // 7 batches of 2: an odd count, the last batch short
    pairs(&val, 5, 100);
    let config = dir.join("dpo.toml");
    let text = format!(
        "[model]\nmethod = \"lora\"\ntokenizer = \"{}\"\n[lora]\nr = 4\nlora_alpha = 8\nlora_dropout = 0.1\n\
         target_modules = [\"q_proj\", \"v_proj\"]\n[data]\ntrain = \"{}\"\nval = \"{}\"\nmax_len = 60\nbatch_size = 2\n\
         [train]\nmax_steps = 3\ngrad_accum = 2\nlr = 1e-2\nwarmup_steps = 1\neval_interval = 0\nlog_interval = 1\n",
        hf.join("tokenizer.json").display(),
        train.display(),
        val.display()
    );
    std::fs::write(&config, text).unwrap();
    let (one, two) = (dir.join("one"), dir.join("two"));
    let args = |out: &Path| -> Vec<String> {
        ["dpo", "--config", config.to_str().unwrap(), "--model", hf.to_str().unwrap(), "--out", out.to_str().unwrap()]
            .map(String::from)
            .to_vec()
    };
    let a = single(&args(&one).iter().map(String::as_str).collect::<Vec<_>>()).ok();
    let b = mpirun(2, &args(&two).iter().map(String::as_str).collect::<Vec<_>>(), &[]).ok();
    // Rank 0 alone prints; the held-out figures (computed against the shared reference) agree.
    assert_eq!(b.stdout.matches("trained 3 steps").count(), 1, "{}", b.dump());
    assert_eq!(b.stderr.matches("computing the reference").count(), 1, "{}", b.dump());
    let end = |r: &Run| r.stdout.lines().find(|l| l.contains("held-out pairs at the end")).map(str::to_string);
    assert_eq!(end(&a), end(&b), "{}\n{}", a.dump(), b.dump());
    let file = "adapter/adapter_model.safetensors";
    let d = max_diff(&one.join(file), &two.join(file));
    assert!(d <= TOLERANCE, "DPO adapters differ between 1 process and 2 ranks by {d}");
}
