# vhost-net-rs: top-level commands. The README names two: `make demo` and
# `make check`. Everything installs what it needs (scripts/build/bootstrap.sh).
SHELL := /bin/bash
.DEFAULT_GOAL := module

# The kernel to build against: the cached test kernel unless given.
KDIR ?=

.PHONY: module kdir check check-debug soak demo bench profile profile-qemu fmt clean bootstrap kernel

bootstrap:
	@scripts/build/bootstrap.sh >&2

kernel: bootstrap
	@scripts/build/kernel.sh release >/dev/null

# Prints the absolute path of the test kernel's build directory.
kdir: bootstrap
	@scripts/build/kernel.sh release

module: bootstrap
	@scripts/build/module.sh $(if $(KDIR),$(KDIR),$$(scripts/build/kernel.sh release))

check:
	@scripts/check/check.sh

check-debug:
	@scripts/check/check-debug.sh

soak:
	@tests/fuzz/run.sh 600
	@scripts/check/check-debug.sh --soak

demo:
	@scripts/vm/demo.sh

bench: module
	@scripts/bench.sh $$(scripts/build/kernel.sh release) $(CURDIR)/vhost_net_rs.ko

# Instruction profile of the bench rows, C beside ours (scripts/bench.sh,
# BENCH_PROFILE): e.g. make profile BENCH_ARGS="--tests tx --sizes 64".
profile: module
	@BENCH_PROFILE=1 BENCH_ROUNDS=$${BENCH_ROUNDS:-1} BENCH_SECS=$${BENCH_SECS:-1} \
		BENCH_OUT=$${BENCH_OUT:-$(CURDIR)/build/profile} \
		scripts/bench.sh $$(scripts/build/kernel.sh release) $(CURDIR)/vhost_net_rs.ko

# The same for the nested QEMU rows (scripts/bench-qemu.sh,
# BENCH_QEMU_PROFILE): the test VM's instructions per MiB moved, kernel by
# function and user space (the inner QEMU) as one line, C beside ours;
# 64 KB TSO packets (BENCH_QEMU_TSO) so that the windows compare.
profile-qemu: module
	@BENCH_QEMU_PROFILE=1 BENCH_QEMU_ROUNDS=$${BENCH_QEMU_ROUNDS:-1} \
		BENCH_QEMU_REPS=$${BENCH_QEMU_REPS:-2} BENCH_QEMU_PIN=$${BENCH_QEMU_PIN:-1} \
		BENCH_QEMU_TSO=$${BENCH_QEMU_TSO:-44} BENCH_OUT=$${BENCH_OUT:-$(CURDIR)/build/profile} \
		scripts/bench-qemu.sh $$(scripts/build/kernel.sh release) $(CURDIR)/vhost_net_rs.ko \
		$${BENCH_OUT:-$(CURDIR)/build/profile}/qemu-raw.csv

fmt:
	@scripts/build/fmt.sh fix

clean:
	@rm -f vhost_net_rs.ko *.o *.mod *.mod.c .*.cmd Module.symvers modules.order
	@find src -name '*.o' -o -name '.*.cmd' -o -name '*.rmeta' -o -name '*.d' | xargs -r rm -f
