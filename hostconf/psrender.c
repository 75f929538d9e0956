/* psrender.c — a plan as a self-checking, idempotent PowerShell script.
 * See ps.h for what the script does and why it is written the way it is. */
#include "ps.h"
#include "hostconf_priv.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/*
 * The script's fixed parts, verbatim PowerShell. No value of the plan
 * appears in them: values reach the code only as the param() variables
 * ($VMName, $InstancePath, $MinPartitionVRAM, ...).
 */
static const char ps_prologue[] =
	"\n"
	"$ErrorActionPreference = 'Stop'\n"
	"\n"
	"# The VM, by exact name: Get-VM -Name would read [ ] * ? in it as wildcards.\n"
	"$vms = @(Hyper-V\\Get-VM | Where-Object { $_.Name -eq $VMName })\n"
	"if ($vms.Count -eq 0) {\n"
	"    throw \"No virtual machine named '$VMName' on this host.\"\n"
	"}\n"
	"if ($vms.Count -gt 1) {\n"
	"    throw \"$($vms.Count) virtual machines are named '$VMName'; rename all but one.\"\n"
	"}\n"
	"$vm = $vms[0]\n"
	"\n"
	"# Shut the VM down when a change needs it Off; remember to start it again.\n"
	"function Stop-GpupVM {\n"
	"    if ($vm.State -eq 'Off') {\n"
	"        return $false\n"
	"    }\n"
	"    # A Saved or Paused VM would lose its state: that is the user's call.\n"
	"    if ($vm.State -ne 'Running') {\n"
	"        throw \"VM '$VMName' is $($vm.State); start it and shut it down (or discard its saved state) first.\"\n"
	"    }\n"
	"    if ($StopVM -eq 0) {\n"
	"        throw \"VM '$VMName' is $($vm.State); shut it down first (or render the script with --stop-vm).\"\n"
	"    }\n"
	"    Write-Host \"Shutting down VM '$VMName' ...\"\n"
	"    Hyper-V\\Stop-VM -VM $vm -Force\n"
	"    return $true\n"
	"}\n";

static const char ps_server[] =
	"\n"
	"# Windows Server: allow partitioning devices that are not validated for\n"
	"# secure/supported assignment (host-wide policy, DWORD 0).\n"
	"if ($ServerPolicy -ne 0) {\n"
	"    $policyKey = 'HKLM:\\SOFTWARE\\Policies\\Microsoft\\Windows\\HyperV'\n"
	"    if (-not (Test-Path -LiteralPath $policyKey)) {\n"
	"        New-Item -Path $policyKey -Force | Out-Null\n"
	"        Write-Host \"Created $policyKey\"\n"
	"    }\n"
	"    $key = Get-Item -LiteralPath $policyKey\n"
	"    foreach ($name in 'RequireSecureDeviceAssignment', 'RequireSupportedDeviceAssignment') {\n"
	"        if (($key.GetValueNames() -contains $name) -and\n"
	"            ($key.GetValueKind($name) -eq [Microsoft.Win32.RegistryValueKind]::DWord) -and\n"
	"            ($key.GetValue($name) -eq 0)) {\n"
	"            Write-Host \"Policy ${name} = 0: no change\"\n"
	"        } else {\n"
	"            New-ItemProperty -LiteralPath $policyKey -Name $name -PropertyType DWord -Value 0 -Force | Out-Null\n"
	"            Write-Host \"Policy ${name} set to 0\"\n"
	"        }\n"
	"    }\n"
	"}\n";

static const char ps_apply[] =
	"\n"
	"# The twelve quota values, as Set-VMGpuPartitionAdapter names them.\n"
	"$want = [ordered]@{\n"
	"    MinPartitionVRAM        = $MinPartitionVRAM\n"
	"    MaxPartitionVRAM        = $MaxPartitionVRAM\n"
	"    OptimalPartitionVRAM    = $OptimalPartitionVRAM\n"
	"    MinPartitionEncode      = $MinPartitionEncode\n"
	"    MaxPartitionEncode      = $MaxPartitionEncode\n"
	"    OptimalPartitionEncode  = $OptimalPartitionEncode\n"
	"    MinPartitionDecode      = $MinPartitionDecode\n"
	"    MaxPartitionDecode      = $MaxPartitionDecode\n"
	"    OptimalPartitionDecode  = $OptimalPartitionDecode\n"
	"    MinPartitionCompute     = $MinPartitionCompute\n"
	"    MaxPartitionCompute     = $MaxPartitionCompute\n"
	"    OptimalPartitionCompute = $OptimalPartitionCompute\n"
	"}\n"
	"\n"
	"# Windows 10 / Server 2022 have no -InstancePath: there Hyper-V picks the GPU.\n"
	"$canInstancePath = (Get-Command -Name 'Hyper-V\\Add-VMGpuPartitionAdapter').Parameters.ContainsKey('InstancePath')\n"
	"if (($UseInstancePath -ne 0) -and -not $canInstancePath) {\n"
	"    throw \"This host's Add-VMGpuPartitionAdapter has no -InstancePath (Windows 10 / Server 2022); render the script with --host-os win10.\"\n"
	"}\n"
	"\n"
	"# What differs from the plan: one adapter on this GPU with these quotas...\n"
	"function Get-GpupAdapterDifferences($adapters) {\n"
	"    $diff = @()\n"
	"    if ($adapters.Count -ne 1) {\n"
	"        $diff += \"$($adapters.Count) GPU partition adapters (want 1)\"\n"
	"        return ,$diff\n"
	"    }\n"
	"    $a = $adapters[0]\n"
	"    foreach ($k in $want.Keys) {\n"
	"        if ([UInt64]$a.$k -ne $want[$k]) {\n"
	"            $diff += \"$k is $($a.$k) (want $($want[$k]))\"\n"
	"        }\n"
	"    }\n"
	"    if (($UseInstancePath -ne 0) -and $a.PSObject.Properties['InstancePath'] -and\n"
	"        ($a.InstancePath -ne $InstancePath)) {\n"
	"        $diff += \"the adapter uses GPU $($a.InstancePath)\"\n"
	"    }\n"
	"    return ,$diff\n"
	"}\n"
	"\n"
	"# ... and the VM's cache and MMIO settings.\n"
	"function Get-GpupVMDifferences($machine) {\n"
	"    $diff = @()\n"
	"    if ($machine.GuestControlledCacheTypes -ne $true) {\n"
	"        $diff += 'GuestControlledCacheTypes is off'\n"
	"    }\n"
	"    if ([UInt64]$machine.LowMemoryMappedIoSpace -ne $LowMemoryMappedIoSpace) {\n"
	"        $diff += \"LowMemoryMappedIoSpace is $($machine.LowMemoryMappedIoSpace) (want $LowMemoryMappedIoSpace)\"\n"
	"    }\n"
	"    if ([UInt64]$machine.HighMemoryMappedIoSpace -ne $HighMemoryMappedIoSpace) {\n"
	"        $diff += \"HighMemoryMappedIoSpace is $($machine.HighMemoryMappedIoSpace) (want $HighMemoryMappedIoSpace)\"\n"
	"    }\n"
	"    return ,$diff\n"
	"}\n"
	"\n"
	"$adapters = @(Hyper-V\\Get-VMGpuPartitionAdapter -VM $vm)\n"
	"$adapterDiff = Get-GpupAdapterDifferences $adapters\n"
	"$vmDiff = Get-GpupVMDifferences $vm\n"
	"if (($adapterDiff.Count + $vmDiff.Count) -eq 0) {\n"
	"    Write-Host \"VM '$VMName': GPU partition and MMIO already as planned: no change.\"\n"
	"} else {\n"
	"    foreach ($d in ($adapterDiff + $vmDiff)) {\n"
	"        Write-Host \"VM '$VMName': $d\"\n"
	"    }\n"
	"    $restart = Stop-GpupVM\n"
	"    try {\n"
	"        if ($adapterDiff.Count -eq 0) {\n"
	"            Write-Host 'GPU partition adapter: no change'\n"
	"        } else {\n"
	"            # Only this VM's adapters go; other VMs keep theirs.\n"
	"            foreach ($a in $adapters) {\n"
	"                Hyper-V\\Remove-VMGpuPartitionAdapter -VMGpuPartitionAdapter $a\n"
	"                Write-Host \"Removed GPU partition adapter $($a.Id)\"\n"
	"            }\n"
	"            $add = @{ VM = $vm }\n"
	"            if ($UseInstancePath -ne 0) {\n"
	"                $add['InstancePath'] = $InstancePath\n"
	"            }\n"
	"            Hyper-V\\Add-VMGpuPartitionAdapter @add\n"
	"            $set = @{ VM = $vm }\n"
	"            foreach ($k in $want.Keys) {\n"
	"                $set[$k] = $want[$k]\n"
	"            }\n"
	"            Hyper-V\\Set-VMGpuPartitionAdapter @set\n"
	"            Write-Host 'Added a GPU partition adapter and set its twelve quotas'\n"
	"        }\n"
	"        if ($vmDiff.Count -eq 0) {\n"
	"            Write-Host 'Cache types and MMIO: no change'\n"
	"        } else {\n"
	"            Hyper-V\\Set-VM -VM $vm -GuestControlledCacheTypes $true -LowMemoryMappedIoSpace $LowMemoryMappedIoSpace -HighMemoryMappedIoSpace $HighMemoryMappedIoSpace\n"
	"            Write-Host 'Set GuestControlledCacheTypes and MMIO'\n"
	"        }\n"
	"    } finally {\n"
	"        if ($restart) {\n"
	"            Hyper-V\\Start-VM -VM $vm\n"
	"            Write-Host \"Started VM '$VMName' again\"\n"
	"        }\n"
	"    }\n"
	"}\n"
	"\n"
	"# Verify through Hyper-V itself, then summarise.\n"
	"$vm = Hyper-V\\Get-VM -Id $vm.Id\n"
	"$adapters = @(Hyper-V\\Get-VMGpuPartitionAdapter -VM $vm)\n"
	"$after = (Get-GpupAdapterDifferences $adapters) + (Get-GpupVMDifferences $vm)\n"
	"if ($after.Count -ne 0) {\n"
	"    throw (\"Verification failed for VM '$VMName': \" + ($after -join '; '))\n"
	"}\n"
	"$a = $adapters[0]\n"
	"Write-Host \"VM '$VMName' has its GPU partition:\"\n"
	"foreach ($r in 'VRAM', 'Encode', 'Decode', 'Compute') {\n"
	"    Write-Host ('  {0,-8} Min {1}  Optimal {2}  Max {3}' -f $r, $a.\"MinPartition$r\", $a.\"OptimalPartition$r\", $a.\"MaxPartition$r\")\n"
	"}\n"
	"Write-Host ('  MMIO     Low {0} MiB  High {1} MiB  GuestControlledCacheTypes {2}' -f ($vm.LowMemoryMappedIoSpace / 1048576), ($vm.HighMemoryMappedIoSpace / 1048576), $vm.GuestControlledCacheTypes)\n"
	"exit 0\n";

static const char ps_revert[] =
	"\n"
	"# Undo: no partition adapter, no guest-controlled caching, Hyper-V's default\n"
	"# MMIO. The host-wide policy values of --server (if ever set) stay.\n"
	"function Get-GpupDifferences($adapters, $machine) {\n"
	"    $diff = @()\n"
	"    if ($adapters.Count -ne 0) {\n"
	"        $diff += \"$($adapters.Count) GPU partition adapter(s)\"\n"
	"    }\n"
	"    if ($machine.GuestControlledCacheTypes -ne $false) {\n"
	"        $diff += 'GuestControlledCacheTypes is on'\n"
	"    }\n"
	"    if ([UInt64]$machine.LowMemoryMappedIoSpace -ne $LowMemoryMappedIoSpace) {\n"
	"        $diff += \"LowMemoryMappedIoSpace is $($machine.LowMemoryMappedIoSpace) (want $LowMemoryMappedIoSpace)\"\n"
	"    }\n"
	"    if ([UInt64]$machine.HighMemoryMappedIoSpace -ne $HighMemoryMappedIoSpace) {\n"
	"        $diff += \"HighMemoryMappedIoSpace is $($machine.HighMemoryMappedIoSpace) (want $HighMemoryMappedIoSpace)\"\n"
	"    }\n"
	"    return ,$diff\n"
	"}\n"
	"\n"
	"$adapters = @(Hyper-V\\Get-VMGpuPartitionAdapter -VM $vm)\n"
	"$before = Get-GpupDifferences $adapters $vm\n"
	"if ($before.Count -eq 0) {\n"
	"    Write-Host \"VM '$VMName': no GPU partition, default MMIO: no change.\"\n"
	"} else {\n"
	"    foreach ($d in $before) {\n"
	"        Write-Host \"VM '$VMName': $d\"\n"
	"    }\n"
	"    $restart = Stop-GpupVM\n"
	"    try {\n"
	"        foreach ($a in $adapters) {\n"
	"            Hyper-V\\Remove-VMGpuPartitionAdapter -VMGpuPartitionAdapter $a\n"
	"            Write-Host \"Removed GPU partition adapter $($a.Id)\"\n"
	"        }\n"
	"        Hyper-V\\Set-VM -VM $vm -GuestControlledCacheTypes $false -LowMemoryMappedIoSpace $LowMemoryMappedIoSpace -HighMemoryMappedIoSpace $HighMemoryMappedIoSpace\n"
	"        Write-Host 'Set GuestControlledCacheTypes off and MMIO back to the defaults'\n"
	"    } finally {\n"
	"        if ($restart) {\n"
	"            Hyper-V\\Start-VM -VM $vm\n"
	"            Write-Host \"Started VM '$VMName' again\"\n"
	"        }\n"
	"    }\n"
	"}\n"
	"\n"
	"$vm = Hyper-V\\Get-VM -Id $vm.Id\n"
	"$after = Get-GpupDifferences @(Hyper-V\\Get-VMGpuPartitionAdapter -VM $vm) $vm\n"
	"if ($after.Count -ne 0) {\n"
	"    throw (\"Verification failed for VM '$VMName': \" + ($after -join '; '))\n"
	"}\n"
	"Write-Host \"VM '$VMName' has no GPU partition; MMIO Low $($vm.LowMemoryMappedIoSpace / 1048576) MiB, High $($vm.HighMemoryMappedIoSpace / 1048576) MiB.\"\n"
	"exit 0\n";

int gp_ps_quote(FILE *out, const char *s, struct gp_error *err)
{
	const unsigned char *p = (const unsigned char *)s;

	fputc('\'', out);
	while (*p) {
		/* PowerShell's tokenizer ends a single-quoted string at any of
		 * ' U+2018 U+2019 U+201A U+201B, and reads two of them in a row as
		 * one literal character: double each. */
		if (*p == '\'') {
			fputs("''", out);
			p++;
		} else if (p[0] == 0xe2 && p[1] == 0x80 && p[2] >= 0x98 && p[2] <= 0x9b) {
			fwrite(p, 1, 3, out);
			fwrite(p, 1, 3, out);
			p += 3;
		} else {
			fputc(*p, out);
			p++;
		}
	}
	fputc('\'', out);
	if (ferror(out))
		return gp_error_set_errno(err, GP_ERR_IO, errno, "writing the PowerShell script");
	return 0;
}

/* A comment line's text: control characters (a newline would end the
 * comment and start code) become '?'. */
static void comment(FILE *out, const char *label, const char *text)
{
	fprintf(out, "# %s", label);
	for (const unsigned char *p = (const unsigned char *)text; *p; p++)
		fputc(*p < 0x20 || *p == 0x7f ? '?' : *p, out);
	fputc('\n', out);
}

/* One param() entry: "    [TYPE] $NAME = 'VALUE'" (comma added by caller). */
static int param_str(FILE *out, bool *first, const char *type, const char *name,
		     const char *value, struct gp_error *err)
{
	if (!*first)
		fputs(",\n", out);
	*first = false;
	fprintf(out, "    [%s] $%s = ", type, name);
	return gp_ps_quote(out, value, err);
}

static int param_u64(FILE *out, bool *first, const char *type, const char *name,
		     uint64_t v, struct gp_error *err)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return param_str(out, first, type, name, buf, err);
}

int gp_ps_render(const struct gp_plan *plan, FILE *out, struct gp_error *err)
{
	static const char *const part_prop[3] = { "MinPartition", "MaxPartition",
						  "OptimalPartition" };
	bool first = true;
	int rc = 0;

	if (!plan->vm_name || !gp_hc_valid_utf8(plan->vm_name))
		return gp_error_set(err, GP_ERR_INVALID, "the VM name is missing or not UTF-8");
	if (!plan->revert && (!plan->instance_path || !gp_hc_valid_utf8(plan->instance_path)))
		return gp_error_set(err, GP_ERR_INVALID,
				    "the GPU instance path is missing or not UTF-8");

	/* UTF-8 BOM: Windows PowerShell 5.1 reads BOM-less scripts as ANSI. */
	fputs("\xef\xbb\xbf", out);
	if (plan->revert)
		fputs("# Generated by gpup hostconf --revert: removes the GPU partition (GPU-P)\n"
		      "# of one Hyper-V VM and restores Hyper-V's default MMIO.\n", out);
	else
		fputs("# Generated by gpup hostconf: GPU partitioning (GPU-P) for one Hyper-V VM.\n", out);
	fputs("# Run it in an elevated PowerShell on the Hyper-V host:\n"
	      "#   powershell.exe -NoProfile -ExecutionPolicy Bypass -File <this file>\n"
	      "# Every value is a parameter below (override with -Name value). Running it\n"
	      "# again once the VM is configured changes nothing.\n", out);
	if (!plan->revert) {
		if (plan->gpu_label)
			comment(out, "GPU: ", plan->gpu_label);
		comment(out, "Host: ", plan->host_os == GP_HOST_WIN10
				       ? "Windows 10 / Server 2022 (no -InstancePath: Hyper-V picks the GPU)"
				       : "Windows 11 / Server 2025 (Add-VMGpuPartitionAdapter -InstancePath)");
		if (plan->server)
			comment(out, "Server: ", "sets the HyperV device-assignment policies to 0");
	}
	comment(out, "MMIO: ", plan->mmio_reason);
	fputs("#Requires -RunAsAdministrator\n"
	      "#Requires -Modules Hyper-V\n"
	      "[CmdletBinding()]\n"
	      "param(\n", out);

	rc = param_str(out, &first, "string", "VMName", plan->vm_name, err);
	if (!plan->revert) {
		if (rc == 0)
			rc = param_str(out, &first, "string", "InstancePath", plan->instance_path, err);
		if (rc == 0)
			rc = param_u64(out, &first, "int", "UseInstancePath",
				       plan->host_os == GP_HOST_WIN10 ? 0 : 1, err);
		for (int r = 0; r < GP_RES_COUNT && rc == 0; r++) {
			const uint64_t v[3] = { plan->quota[r].min, plan->quota[r].max,
						plan->quota[r].optimal };
			for (int k = 0; k < 3 && rc == 0; k++) {
				char name[64];

				snprintf(name, sizeof(name), "%s%s", part_prop[k],
					 gp_gpu_res_name(r));
				rc = param_u64(out, &first, "UInt64", name, v[k], err);
			}
		}
	}
	if (rc == 0)
		rc = param_u64(out, &first, "UInt64", "LowMemoryMappedIoSpace", plan->low_mmio, err);
	if (rc == 0)
		rc = param_u64(out, &first, "UInt64", "HighMemoryMappedIoSpace", plan->high_mmio, err);
	if (rc == 0)
		rc = param_u64(out, &first, "int", "StopVM", plan->stop_vm ? 1 : 0, err);
	if (rc == 0 && plan->server && !plan->revert)
		rc = param_u64(out, &first, "int", "ServerPolicy", 1, err);
	if (rc)
		return rc;
	fputs("\n)\n", out);
	fputs(ps_prologue, out);
	if (plan->revert) {
		fputs(ps_revert, out);
	} else {
		if (plan->server)
			fputs(ps_server, out);
		fputs(ps_apply, out);
	}
	if (ferror(out))
		return gp_error_set_errno(err, GP_ERR_IO, errno, "writing the PowerShell script");
	return 0;
}

int gp_ps_render_string(const struct gp_plan *plan, char **out, size_t *len,
			struct gp_error *err)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);
	int rc;

	*out = NULL;
	if (!f)
		return gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	rc = gp_ps_render(plan, f, err);
	if (fclose(f) != 0 && rc == 0)
		rc = gp_error_set(err, GP_ERR_NOMEM, "out of memory");
	if (rc) {
		free(buf);
		return rc;
	}
	*out = buf;
	if (len)
		*len = size;
	return 0;
}
