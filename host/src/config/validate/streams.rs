//! Checks of `[[streams]]` and `[dead_letter]`: names, subjects, limits, and the
//! overlaps NATS would refuse at start-up (two streams cannot share a subject).

use std::collections::HashMap;

use super::super::load::Broken;
use super::super::problems::Problems;
use super::super::schema::Config;
use super::super::subject::{overlaps, subject_problem};
use super::names::token_name_problem;
use super::{entry_name, human};

pub(super) fn check(config: &Config, broken: &Broken, problems: &mut Problems) {
    let mut seen = HashMap::new();
    for (i, stream) in config.streams.iter().enumerate() {
        // Its index in the file, to place problems (an earlier entry may have failed to parse).
        let idx = broken.stream_position(i).to_string();
        let (label, _) = entry_name("stream", i, &stream.name, &mut seen, problems);

        if stream.subjects.is_empty() {
            problems.push_at(&["streams", &idx, "subjects"], format!("{label}: `subjects` must not be empty"));
        }
        for (j, subject) in stream.subjects.iter().enumerate() {
            let at = ["streams", idx.as_str(), "subjects", &j.to_string()];
            if let Some(why) = subject_problem(subject, true) {
                problems.push_at(&at, format!("{label}: invalid subject `{subject}`: {why}"));
                continue;
            }
            // NATS refuses a stream whose subjects overlap another stream's.
            let clash = config.streams[..i].iter().find_map(|other| {
                let o = other.subjects.iter().find(|o| subject_problem(o, true).is_none() && overlaps(subject, o))?;
                Some((other.name.get_ref(), o))
            });
            if let Some((other, o)) = clash {
                problems.push_at(
                    &at,
                    format!("{label}: subject `{subject}` overlaps subject `{o}` of stream `{other}`; NATS does not let two streams share subjects"),
                );
            }
        }

        if !(1..=5).contains(&stream.replicas) {
            problems
                .push_at(&["streams", &idx, "replicas"], format!("{label}: `replicas` must be between 1 and 5, got `{}`", stream.replicas));
        }
        if let Some(n) = stream.max_msgs.filter(|n| *n < -1) {
            problems
                .push_at(&["streams", &idx, "max_msgs"], format!("{label}: `max_msgs` must be positive, or -1 for unlimited, got `{n}`"));
        }
        // The server refuses a duplicate window longer than the messages live.
        if let (Some(window), Some(age)) = (stream.duplicate_window, stream.max_age)
            && !age.is_zero()
            && window > age
        {
            problems.push_at(
                &["streams", &idx, "duplicate_window"],
                format!("{label}: `duplicate_window` (`{}`) must not be longer than `max_age` (`{}`)", human(window), human(age)),
            );
        }
    }
    // Defaults stand in for a broken `[dead_letter]`; checking them would
    // report settings the user did not write.
    if !broken.dead_letter {
        check_dead_letter(config, broken, problems);
    }
}

fn check_dead_letter(config: &Config, broken: &Broken, problems: &mut Problems) {
    let dl = &config.dead_letter;
    if !(1..=5).contains(&dl.replicas) {
        problems.push_at(&["dead_letter", "replicas"], format!("`dead_letter.replicas` must be between 1 and 5, got `{}`", dl.replicas));
    }
    if let Some(why) = token_name_problem(&dl.stream) {
        problems.push_at(&["dead_letter", "stream"], format!("invalid `dead_letter.stream` name `{}`: {why}", dl.stream));
    }
    let prefix_ok = match subject_problem(&dl.subject_prefix, false) {
        Some(why) => {
            let message = format!("invalid `dead_letter.subject_prefix` `{}`: {why}", dl.subject_prefix);
            problems.push_at(&["dead_letter", "subject_prefix"], message);
            false
        }
        None => true,
    };
    // Dead letters are published to `<prefix>.<route>`.
    let dl_subjects = format!("{}.>", dl.subject_prefix);

    for (i, stream) in config.streams.iter().enumerate() {
        let name = stream.name.get_ref();
        if *name == dl.stream {
            problems.push_spanned(
                stream.name.span(),
                format!(
                    "stream `{name}`: this name is taken by the dead-letter stream (`dead_letter.stream`), which the host creates itself"
                ),
            );
        }
        if !prefix_ok {
            continue;
        }
        for (j, subject) in stream.subjects.iter().enumerate() {
            if subject_problem(subject, true).is_none() && overlaps(&dl_subjects, subject) {
                let i = broken.stream_position(i);
                problems.push_at(
                    &["streams", &i.to_string(), "subjects", &j.to_string()],
                    format!(
                        "stream `{name}`: subject `{subject}` overlaps the dead-letter subjects `{dl_subjects}` (`dead_letter.subject_prefix`)"
                    ),
                );
            }
        }
    }
}
