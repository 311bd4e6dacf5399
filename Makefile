# vhost-net-rs: top-level commands. The README names two: `make demo` and
# `make check`. Everything installs what it needs (scripts/build/bootstrap.sh).
SHELL := /bin/bash
.DEFAULT_GOAL := module

# The kernel to build for: `test` (the 6.12 test kernel this project
# builds and caches; the default) or `debian13` (Debian 13's stock
# trixie-backports kernel, built against Debian's headers with Debian 13's
# toolchain: scripts/build/debian13.sh). KDIR, if given, is a kernel build
# tree to use instead.
KERNEL ?= test
KDIR ?=
ifeq ($(filter test debian13,$(KERNEL)),)
$(error KERNEL must be test or debian13, not '$(KERNEL)')
endif
# How each kernel's build tree is found (make -s kdir prints it).
KDIR_OF_test = scripts/build/kernel.sh release
KDIR_OF_debian13 = scripts/build/debian13.sh kdir

.PHONY: module module-debian13 kdir check check-debug soak demo bench profile profile-qemu fmt clean bootstrap kernel

bootstrap:
	@scripts/build/bootstrap.sh >&2

kernel: bootstrap
	@$(KDIR_OF_$(KERNEL)) >/dev/null

# Prints the absolute path of the kernel build (or headers) tree the module
# is built against.
kdir: bootstrap
	@$(KDIR_OF_$(KERNEL))

module: bootstrap
	@scripts/build/module.sh $(if $(KDIR),$(KDIR),$(if $(filter debian13,$(KERNEL)),debian13,$$(scripts/build/kernel.sh release)))

check:
	@scripts/check/check.sh

check-debug:
	@scripts/check/check-debug.sh

soak:
	@tests/fuzz/run.sh 600
	@scripts/check/check-debug.sh --soak

demo:
	@KERNEL=$(KERNEL) scripts/vm/demo.sh

# The benchmark toolbox is bench/ (bench/bench --help lists every option);
# OPTS appends options, e.g. make profile OPTS="--tests tx --sizes 64".
OPTS ?=
# KERNEL=debian13: Debian's own kernel image and modules (the C oracle is
# Debian's vhost_net; scripts/build/debian13.sh kernel) and our module
# built for it into build/debian13 (scripts/build/module.sh debian13 DIR),
# with its own output directory and its own table in
# Documentation/performance.rst (bench/bench names them by the kernel).
BENCH_KO_test = $(CURDIR)/vhost_net_rs.ko
BENCH_KO_debian13 = $(CURDIR)/build/debian13/vhost_net_rs.ko
BENCH_KDIR_test = scripts/build/kernel.sh release
BENCH_KDIR_debian13 = scripts/build/debian13.sh kernel
BENCH_OUT_test = $(CURDIR)/build/profile
BENCH_OUT_debian13 = $(CURDIR)/build/profile-debian13
BENCH_RUN = bench/bench --kdir $$($(BENCH_KDIR_$(KERNEL))) --module $(BENCH_KO_$(KERNEL))

# The module the bench loads: the test kernel's at the root (make
# module, as before), or Debian 13's in build/debian13.
module-debian13: bootstrap
	@scripts/build/module.sh debian13 "$(CURDIR)/build/debian13"
BENCH_MODULE_test = module
BENCH_MODULE_debian13 = module-debian13

bench: $(BENCH_MODULE_$(KERNEL))
	@$(BENCH_RUN) $(OPTS)

# Instruction profile of the bench rows, C beside ours: one round of 1 s
# windows, in build/profile.
profile: $(BENCH_MODULE_$(KERNEL))
	@$(BENCH_RUN) --profile --rounds 1 --secs 1 --out $(BENCH_OUT_$(KERNEL)) $(OPTS)

# The same for the nested QEMU rows: the test VM's instructions per MiB
# moved, kernel by function and user space (the inner QEMU) as one line,
# C beside ours; 64 KB TSO packets so that the windows compare. Rows in
# build/profile/qemu-raw.csv.
profile-qemu: $(BENCH_MODULE_$(KERNEL))
	@$(BENCH_RUN) --profile --qemu-only --qemu-rounds 1 --qemu-reps 2 --qemu-pin --qemu-tso 44 \
		--out $(BENCH_OUT_$(KERNEL)) $(OPTS)

fmt:
	@scripts/build/fmt.sh fix

clean:
	@rm -f vhost_net_rs.ko *.o *.mod *.mod.c .*.cmd Module.symvers modules.order
	@find src -name '*.o' -o -name '.*.cmd' -o -name '*.rmeta' -o -name '*.d' | xargs -r rm -f

# The DKMS Debian package, build/deb/vhost-net-rs-dkms_<version>_all.deb
# (scripts/build/deb.sh, packaging/; Documentation/deploying.rst).
.PHONY: deb
deb:
	@scripts/build/deb.sh
