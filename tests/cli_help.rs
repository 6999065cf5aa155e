//! Every command's `--help`: each option and argument has a description, and the ones a user
//! needs before a first run say their default, range or requirement.
mod cli_common;
use cli_common::fdm;

const COMMANDS: [&str; 6] = ["inpaint", "profile", "reproduce", "train", "eval", "inspect"];

/// Options and arguments of a long `--help` whose next line is not a description.
fn undescribed(help: &str) -> Vec<String> {
    let lines: Vec<&str> = help.lines().collect();
    let is_entry = |l: &str| {
        let t = l.trim_start();
        let indent = l.len() - t.len();
        (indent == 2 || indent == 6) && (t.starts_with('-') || t.starts_with('<'))
    };
    let described = |next: Option<&&str>| {
        let t = next.map_or("", |l| l.trim());
        !t.is_empty() && !t.starts_with('[') && !t.starts_with("Possible values")
    };
    (0..lines.len()).filter(|&i| is_entry(lines[i]) && !described(lines.get(i + 1))).map(|i| lines[i].trim().to_string()).collect()
}

#[test]
fn help_describes_every_option_cpu() {
    for cmd in COMMANDS {
        let (ok, help) = fdm(&[cmd, "--help"]);
        assert!(ok, "{cmd}: {help}");
        assert_eq!(undescribed(&help), Vec::<String>::new(), "{cmd} --help");
    }
}

#[test]
fn help_names_defaults_ranges_and_requirements_cpu() {
    let (_, inpaint) = fdm(&["inpaint", "--help"]);
    assert!(inpaint.contains("bundled tiny model"), "--weights default: {inpaint}");
    assert!(inpaint.contains("1 to the model's token vocabulary"), "--top-k range: {inpaint}");
    assert!(inpaint.contains("--resize-mask"), "{inpaint}");
    assert!(inpaint.contains("1 to 4096"), "--batch-size range: {inpaint}");
    let (_, profile) = fdm(&["profile", "--help"]);
    assert!(profile.contains("1 to 64"), "-n range: {profile}");
    // Defaults named as the files and values they are.
    let (_, eval) = fdm(&["eval", "--help"]);
    assert!(eval.contains("assets/weights/vgg16_lpips.safetensors") && eval.contains("alexnet_lpips.safetensors"), "--lpips-weights default: {eval}");
    let (_, reproduce) = fdm(&["reproduce", "--help"]);
    assert!(reproduce.contains("[possible values: vgg, alex]") && reproduce.contains("[default: out/reproduce]"), "{reproduce}");
    let (_, train) = fdm(&["train", "--help"]);
    assert!(train.contains("phase1b, phase2 and phase3") && train.contains("--init"), "{train}");
}

#[test]
fn selfcheck_runs_a_checked_backward_and_an_emulated_kernel_cpu() {
    let (ok, out) = fdm(&["selfcheck"]);
    assert!(ok, "{out}");
    assert!(out.contains("device: "), "{out}");
    assert!(out.contains("gradients are b and a"), "the backward's check: {out}");
    assert!(out.contains("matches the CPU"), "the emulated kernel: {out}");
}
