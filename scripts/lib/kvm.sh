# What this machine's KVM is (sourced by the scripts that choose where guests run; husk-vmm's
# own check is vmm/kvm/host.cpp). Our machines have either a PVM /dev/kvm, which cannot boot a
# stock Linux guest, or no /dev/kvm at all (with kvm_pvm still listed in sysfs).
#   kvm_kind      hardware | pvm | none | other (a device without vmx/svm flags)
#   kvm_describe  "hardware KVM" | "/dev/kvm is PVM" | "no /dev/kvm" | "/dev/kvm without vmx/svm"
kvm_kind() {
  if [ ! -c /dev/kvm ]; then echo none
  elif [ -d /sys/module/kvm_pvm ]; then echo pvm
  elif grep -qwE 'vmx|svm' /proc/cpuinfo; then echo hardware
  else echo other
  fi
}

kvm_describe() {
  case $(kvm_kind) in
    hardware) echo "hardware KVM" ;;
    pvm) echo "/dev/kvm is PVM" ;;
    none) echo "no /dev/kvm" ;;
    *) echo "/dev/kvm without vmx/svm" ;;
  esac
}
