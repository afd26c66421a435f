// Package layout holds no code: its test keeps the module's dependency rules, the ones the
// README's "Architecture" section explains, from being broken by accident.
//
// The rules, from the bottom up:
//
//   - failure, atomicfile, job, config, replies, gitlab and audit are leaves: they import
//     nothing that decides, runs or delivers.
//   - policy decides and delivery delivers; neither knows how a job is run, so neither
//     imports stages, emulator, tryjob or executor. bashscript writes scripts as the runner
//     does and imports job only.
//   - stages orchestrates the protocol calls on top of policy, delivery and replies; it
//     never imports emulator, tryjob or executor.
//   - emulator (the runner, for tests and try) and tryjob (CI files) sit beside stages;
//     only executor and tests import them.
//   - executor (package main) wires everything together; nothing imports it.
//   - Packages named *test (slacktest, gitlabtest) are test doubles: only test code and
//     other test doubles import them.
package layout
