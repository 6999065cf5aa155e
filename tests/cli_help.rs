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

/// The description of `option` in a long `--help`: its lines up to the next blank line, joined.
fn option_help(help: &str, option: &str) -> String {
    let mut lines = help.lines().skip_while(|l| !l.trim_start().starts_with(&format!("{option} ")));
    let head = lines.next().unwrap_or_else(|| panic!("{option} missing from:\n{help}"));
    let body: Vec<&str> = lines.take_while(|l| !l.trim().is_empty()).map(str::trim).collect();
    format!("{} {}", head.trim(), body.join(" "))
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
    // What an option left out means: the config file's or resumed checkpoint's value, else the
    // preset's (values from TrainConfig::tiny / paper) or off.
    for (option, default) in [
        ("--steps", "max_steps if set, else the end of the nominal epochs]"),
        ("--batch", "batch_size, else the preset's: tiny 2, paper 10 (phase1b: 2)]"),
        ("--sample-every", "sample_every, else the preset's 0: no sample grids]"),
        ("--checkpoint-every", "checkpoint_every, else the preset's: tiny 200, paper 1000]"),
        ("--vgg", "vgg_weights, else none: both losses are off, a deviation from the paper]"),
    ] {
        let text = option_help(&train, option);
        assert!(text.contains("[default: the --config file's or the resumed checkpoint's") && text.contains(default), "{option}: {text}");
    }
    for (phase, batch, checkpoint_every) in [(fdm::train::Phase::Phase1a, 10, 1000), (fdm::train::Phase::Phase1b, 2, 1000)] {
        let (paper, tiny) = (fdm::train::TrainConfig::paper(phase), fdm::train::TrainConfig::tiny(phase));
        assert_eq!((paper.batch_size, paper.checkpoint_every, paper.sample_every, paper.max_steps.is_none()), (batch, checkpoint_every, 0, true));
        assert_eq!((tiny.batch_size, tiny.checkpoint_every, tiny.sample_every, tiny.max_steps.is_none()), (2, 200, 0, true));
        assert!(paper.vgg_weights.is_none() && tiny.vgg_weights.is_none());
    }
}

#[test]
fn selfcheck_runs_a_checked_backward_and_an_emulated_kernel_cpu() {
    let (ok, out) = fdm(&["selfcheck"]);
    assert!(ok, "{out}");
    assert!(out.contains("device: "), "{out}");
    assert!(out.contains("gradients are b and a"), "the backward's check: {out}");
    assert!(out.contains("matches the CPU"), "the emulated kernel: {out}");
}
