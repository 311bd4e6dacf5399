# vhost-net-rs: top-level commands. `make help` lists them.
#
# Out of tree, as every external module: `make` builds vhost_net_rs.ko for
# the running kernel (KDIR, default /lib/modules/$(uname -r)/build) with the
# caller's toolchain and installs nothing; `make modules_install` is
# kbuild's. The project's own commands (the README's `make demo` and
# `make check`, bench, profile, and the KERNEL= builds) install what they
# need (scripts/build/bootstrap.sh) and use the project's kernels.
SHELL := /bin/bash
.DEFAULT_GOAL := module

# KERNEL, if given, builds for one of the project's kernels instead of
# KDIR: `test` (the 6.12 test kernel this project builds and caches) or
# `debian13` (Debian 13's stock trixie-backports kernel, built against
# Debian's headers with Debian 13's toolchain: scripts/build/debian13.sh).
KERNEL ?=
ifneq ($(KERNEL),)
ifeq ($(filter test debian13,$(KERNEL)),)
$(error KERNEL must be test or debian13 (or unset: the running kernel or KDIR), not '$(KERNEL)')
endif
endif
KDIR ?= /lib/modules/$(shell uname -r)/build
# The project's kernel of demo, check, bench, profile, kdir: the test kernel
# unless KERNEL names another.
PKERNEL := $(or $(KERNEL),test)
# How each kernel's build tree is found (make -s kdir prints it).
KDIR_OF_test = scripts/build/kernel.sh release
KDIR_OF_debian13 = scripts/build/debian13.sh kdir

.PHONY: module module-host module-test module-debian13 modules_install kdir check check-debug soak \
	demo bench profile profile-qemu fmt clean distclean bootstrap kernel help

bootstrap:
	@scripts/build/bootstrap.sh >&2

kernel: bootstrap
	@$(KDIR_OF_$(PKERNEL)) >/dev/null

# Prints the absolute path of the kernel build (or headers) tree the
# project's commands use: the test kernel's, or Debian 13's with
# KERNEL=debian13.
kdir: bootstrap
	@$(KDIR_OF_$(PKERNEL))

# KERNEL=debian13 builds at the root, as it always has; the bench's copy
# for Debian 13 is in build/debian13 (module-debian13).
ifeq ($(KERNEL),debian13)
module: bootstrap
	@VHOST_STRICT=0 scripts/build/module.sh debian13
else
module: module-$(or $(KERNEL),host)
endif

# The running kernel's (or KDIR's) build, kbuild's way: LLVM, CC, RUSTC,
# BINDGEN, V... given on the command line reach kbuild as they are. Objects
# built against another tree go first (as scripts/build/module.sh does:
# kbuild's dependency files name the old tree's headers).
module-host:
	$(if $(wildcard $(KDIR)/Makefile),,$(error no kernel build tree at $(KDIR): install the headers of kernel $(shell uname -r), or set KDIR=...; for this project's kernels: make KERNEL=test or make KERNEL=debian13))
	@if [ "$$(cat .vhost-kdir 2>/dev/null)" != "$(KDIR)" ]; then \
		$(MAKE) -s -C "$(KDIR)" M="$(CURDIR)" clean >/dev/null && echo "$(KDIR)" > .vhost-kdir; fi
	@$(MAKE) -C "$(KDIR)" M="$(CURDIR)" modules

# The project's kernels, with the project's toolchain (scripts/build/env.sh);
# Clippy and warnings-as-errors are make check's (scripts/build/module.sh
# without VHOST_STRICT=0).
module-test: bootstrap
	@VHOST_STRICT=0 scripts/build/module.sh "$$(scripts/build/kernel.sh release)"

# Debian 13's, in build/debian13 (the test kernel's module at the root
# stays): what make bench/profile KERNEL=debian13 load.
module-debian13: bootstrap
	@VHOST_STRICT=0 scripts/build/module.sh debian13 "$(CURDIR)/build/debian13"

# kbuild's: into $(INSTALL_MOD_PATH)/lib/modules/<release>/updates/, then
# depmod (run here where kbuild skips it for want of a System.map); signed
# with the kernel's key where the kernel is configured so
# (CONFIG_MODULE_SIG_ALL and its key in KDIR; scripts/check/sign-test.sh).
# Builds nothing: run `make` first, as yourself.
modules_install:
	@test -z "$(KERNEL)" || { echo "make: modules_install installs for KDIR (the running kernel by default), not for KERNEL=$(KERNEL)" >&2; exit 2; }
	$(if $(wildcard $(KDIR)/Makefile),,$(error no kernel build tree at $(KDIR): install the headers of kernel $(shell uname -r), or set KDIR=...))
	@test -f vhost_net_rs.ko || { echo "make: vhost_net_rs.ko is not built: run make first" >&2; exit 2; }
	@$(MAKE) -C "$(KDIR)" M="$(CURDIR)" modules_install
	@# kbuild skips depmod when the tree has no System.map, which
	@# distributions' headers packages (Debian's among them) do not ship.
	@if [ ! -r "$(KDIR)/System.map" ]; then \
	    rel=$$(cat "$(KDIR)/include/config/kernel.release") && \
	    echo "make: depmod -a $$rel (kbuild skipped it: $(KDIR) has no System.map)" && \
	    PATH="$$PATH:/sbin" depmod -a $(if $(INSTALL_MOD_PATH),-b "$(INSTALL_MOD_PATH)") "$$rel"; fi

help:
	@echo 'vhost-net-rs: make [TARGET] [VARIABLE=value ...]'
	@echo
	@echo 'Building the module (installs nothing):'
	@echo '  make                    vhost_net_rs.ko for the running kernel (KDIR)'
	@echo '  make modules_install    install it (kbuild: updates/, depmod, signing if configured)'
	@echo '  make clean              remove every build product (build/debian13 too)'
	@echo '  make distclean          clean, and build/ (results, VM images) and the cargo targets'
	@echo '  make KERNEL=test        build for the 6.12 test kernel this project builds (cached)'
	@echo '  make KERNEL=debian13    build for Debian 13'"'"'s trixie-backports kernel'
	@echo '  make -s kdir            print the kernel tree of KERNEL (default: the test kernel)'
	@echo
	@echo 'The project'"'"'s commands (install what they need: scripts/build/bootstrap.sh):'
	@echo '  make demo               boot the test VM, load the module, run a real QEMU guest on it'
	@echo '  make check              every test: lints, host tests, the VM suites on both kernels'
	@echo '  make check-debug        the VM suite on the debug kernel (KASAN, lockdep, kmemleak)'
	@echo '  make soak               long fuzzing and debug-kernel soak'
	@echo '  make bench              ours beside the C vhost_net (bench/bench --help; OPTS=...)'
	@echo '  make profile            instructions per packet by function, C beside ours'
	@echo '  make profile-qemu       the same for the nested QEMU rows'
	@echo '  make fmt                rustfmt every crate'
	@echo '  make bootstrap          install the packages and tools the project uses'
	@echo '  make deb                the DKMS Debian package, build/deb/ (Documentation/deploying.rst)'
	@echo
	@echo 'Variables:'
	@echo '  KDIR=DIR                kernel build tree (default /lib/modules/$$(uname -r)/build)'
	@echo '  KERNEL=test|debian13    one of the project'"'"'s kernels instead of KDIR'
	@echo '  LLVM=1|-19, CC, RUSTC, BINDGEN, V=1'
	@echo '                          toolchain and verbosity, passed to kbuild as given'
	@echo '  INSTALL_MOD_PATH=DIR    root to install under (modules_install)'
	@echo '  VHOST_NET_RS_VERSION=V  version modinfo shows (default: the VERSION file, or git describe)'
	@echo '  OPTS="..."              extra bench/bench options (bench, profile, profile-qemu)'

check:
	@scripts/check/check.sh

check-debug:
	@scripts/check/check-debug.sh

soak:
	@tests/fuzz/run.sh 600
	@scripts/check/check-debug.sh --soak

demo:
	@KERNEL=$(PKERNEL) scripts/vm/demo.sh

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
BENCH_RUN = bench/bench --kdir $$($(BENCH_KDIR_$(PKERNEL))) --module $(BENCH_KO_$(PKERNEL))

# The module the bench loads: the test kernel's at the root, or Debian
# 13's in build/debian13.

bench: module-$(PKERNEL)
	@$(BENCH_RUN) $(OPTS)

# Instruction profile of the bench rows, C beside ours: one round of 1 s
# windows, in build/profile.
profile: module-$(PKERNEL)
	@$(BENCH_RUN) --profile --rounds 1 --secs 1 --out $(BENCH_OUT_$(PKERNEL)) $(OPTS)

# The same for the nested QEMU rows: the test VM's instructions per MiB
# moved, kernel by function and user space (the inner QEMU) as one line,
# C beside ours; 64 KB TSO packets so that the windows compare. Rows in
# build/profile/qemu-raw.csv.
profile-qemu: module-$(PKERNEL)
	@$(BENCH_RUN) --profile --qemu-only --qemu-rounds 1 --qemu-reps 2 --qemu-pin --qemu-tso 44 \
		--out $(BENCH_OUT_$(PKERNEL)) $(OPTS)

fmt:
	@scripts/build/fmt.sh fix

# Every product of a module build, whichever kernel it was for, without
# needing that kernel's tree (kbuild's clean pass needs one; the running
# kernel may have none).
clean:
	@rm -f vhost_net_rs.ko vhost_net_rs.o vhost_net_rs.mod vhost_net_rs.mod.c vhost_net_rs.mod.o \
		.module-common.o Module.symvers modules.order .vhost-kdir src/kapi/shim_generated.rs
	@find . -maxdepth 1 -name '.*.cmd' -delete
	@find src \( -name '*.o' -o -name '.*.cmd' -o -name '*.rmeta' -o -name '*.d' \) -delete
	@rm -rf build/debian13

# clean, and everything else the project's commands leave: build/ (VM
# images, results of check, bench and profile) and the cargo targets.
distclean: clean
	@rm -rf build tests/*/target bench/*/target tools/testing/selftests/drivers/net/vhost_net_rs/vmtest

# The DKMS Debian package, build/deb/vhost-net-rs-dkms_<version>_all.deb
# (scripts/build/deb.sh, packaging/; Documentation/deploying.rst).
.PHONY: deb
deb:
	@scripts/build/deb.sh
