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
 * ($VMName, $Gpu, $VRAM, ...). ps_common finds the VM and defines what
 * both directions share (comparing, recording, changing, verifying);
 * ps_apply gives the VM its partition, ps_revert restores the record.
 * Windows PowerShell 5.1 runs them too: no ?:, ??, ?. or && / || (the
 * tests parse every variant and reject those).
 */
static const char ps_common[] =
	"\n"
	"Set-StrictMode -Version Latest\n"
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
	"}\n"
	"\n"
	"# The VM's settings before gpup changed them are recorded on the host, one\n"
	"# file per VM (by Id: names can repeat and hold any character), for --revert.\n"
	"if ($StateDir -eq '') {\n"
	"    $base = $env:ProgramData\n"
	"    if (-not $base) {\n"
	"        $base = [System.IO.Path]::GetTempPath()\n"
	"    }\n"
	"    $StateDir = Join-Path $base 'gpup'\n"
	"}\n"
	"$recordPath = Join-Path $StateDir \"hostconf-$($vm.Id).json\"\n"
	"$revertedPath = Join-Path $StateDir \"hostconf-$($vm.Id).reverted.json\"\n"
	"\n"
	"$quotaNames = foreach ($r in 'VRAM', 'Encode', 'Decode', 'Compute') {\n"
	"    \"MinPartition$r\"\n"
	"    \"MaxPartition$r\"\n"
	"    \"OptimalPartition$r\"\n"
	"}\n"
	"\n"
	"# Windows 10 / Server 2022 have no -InstancePath: there Hyper-V picks the GPU.\n"
	"$canInstancePath = (Get-Command -Name 'Hyper-V\\Add-VMGpuPartitionAdapter').Parameters.ContainsKey('InstancePath')\n"
	"\n"
	"# An adapter as plain data, the form compared, recorded and restored.\n"
	"function ConvertTo-GpupAdapter($a) {\n"
	"    $d = [ordered]@{ InstancePath = '' }\n"
	"    if ($a.PSObject.Properties['InstancePath'] -and $a.InstancePath) {\n"
	"        $d.InstancePath = [string]$a.InstancePath\n"
	"    }\n"
	"    foreach ($k in $quotaNames) {\n"
	"        $d[$k] = [string]$a.$k\n"
	"    }\n"
	"    return $d\n"
	"}\n"
	"\n"
	"# What differs between the VM's adapters and the wanted ones (plain data);\n"
	"# an empty wanted InstancePath accepts any GPU.\n"
	"function Get-GpupAdapterDifferences($adapters, $wanted) {\n"
	"    $diff = @()\n"
	"    if ($adapters.Count -ne $wanted.Count) {\n"
	"        $diff += \"$($adapters.Count) GPU partition adapter(s) (want $($wanted.Count))\"\n"
	"        return ,$diff\n"
	"    }\n"
	"    for ($i = 0; $i -lt $wanted.Count; $i++) {\n"
	"        $a = ConvertTo-GpupAdapter $adapters[$i]\n"
	"        $w = $wanted[$i]\n"
	"        foreach ($k in $quotaNames) {\n"
	"            if ([UInt64]$a[$k] -ne [UInt64]$w[$k]) {\n"
	"                $diff += \"$k is $($a[$k]) (want $($w[$k]))\"\n"
	"            }\n"
	"        }\n"
	"        if ($w.InstancePath -and $a.InstancePath -and ($a.InstancePath -ne $w.InstancePath)) {\n"
	"            $diff += \"the adapter uses GPU $($a.InstancePath)\"\n"
	"        }\n"
	"    }\n"
	"    return ,$diff\n"
	"}\n"
	"\n"
	"# ... and between the VM's cache and MMIO settings and the wanted ones.\n"
	"function Get-GpupVMDifferences($machine, [bool] $cache, [UInt64] $low, [UInt64] $high) {\n"
	"    $diff = @()\n"
	"    if ($machine.GuestControlledCacheTypes -ne $cache) {\n"
	"        $diff += \"GuestControlledCacheTypes is $($machine.GuestControlledCacheTypes) (want $cache)\"\n"
	"    }\n"
	"    if ([UInt64]$machine.LowMemoryMappedIoSpace -ne $low) {\n"
	"        $diff += \"LowMemoryMappedIoSpace is $($machine.LowMemoryMappedIoSpace) (want $low)\"\n"
	"    }\n"
	"    if ([UInt64]$machine.HighMemoryMappedIoSpace -ne $high) {\n"
	"        $diff += \"HighMemoryMappedIoSpace is $($machine.HighMemoryMappedIoSpace) (want $high)\"\n"
	"    }\n"
	"    return ,$diff\n"
	"}\n"
	"\n"
	"# Replace the VM's adapters by the wanted ones (the VM is Off).\n"
	"function Set-GpupAdapters($adapters, $wanted) {\n"
	"    foreach ($a in $adapters) {\n"
	"        Hyper-V\\Remove-VMGpuPartitionAdapter -VMGpuPartitionAdapter $a\n"
	"        Write-Host \"Removed GPU partition adapter $($a.Id)\"\n"
	"    }\n"
	"    foreach ($w in $wanted) {\n"
	"        $before = @(Hyper-V\\Get-VMGpuPartitionAdapter -VM $vm | ForEach-Object { $_.Id })\n"
	"        $add = @{ VM = $vm }\n"
	"        if ($canInstancePath -and $w.InstancePath) {\n"
	"            $add['InstancePath'] = $w.InstancePath\n"
	"        }\n"
	"        Hyper-V\\Add-VMGpuPartitionAdapter @add\n"
	"        $new = @(Hyper-V\\Get-VMGpuPartitionAdapter -VM $vm | Where-Object { $before -notcontains $_.Id })\n"
	"        $set = @{ VMGpuPartitionAdapter = $new }\n"
	"        foreach ($k in $quotaNames) {\n"
	"            $set[$k] = [UInt64]$w[$k]\n"
	"        }\n"
	"        Hyper-V\\Set-VMGpuPartitionAdapter @set\n"
	"        Write-Host 'Added a GPU partition adapter and set its twelve quotas'\n"
	"    }\n"
	"}\n"
	"\n"
	"# The host-wide device-assignment policy values (Windows Server), as they are.\n"
	"$policyKey = 'HKLM:\\SOFTWARE\\Policies\\Microsoft\\Windows\\HyperV'\n"
	"function Get-GpupPolicy {\n"
	"    $key = $null\n"
	"    if (Test-Path -LiteralPath $policyKey) {\n"
	"        $key = Get-Item -LiteralPath $policyKey\n"
	"    }\n"
	"    foreach ($name in 'RequireSecureDeviceAssignment', 'RequireSupportedDeviceAssignment') {\n"
	"        if ($key -and ($key.GetValueNames() -contains $name)) {\n"
	"            [ordered]@{ Name = $name; Exists = $true; Kind = [string]$key.GetValueKind($name); Value = [string]$key.GetValue($name) }\n"
	"        } else {\n"
	"            [ordered]@{ Name = $name; Exists = $false; Kind = ''; Value = '' }\n"
	"        }\n"
	"    }\n"
	"}\n"
	"\n"
	"# What differs between the policy values and the wanted ones.\n"
	"function Get-GpupPolicyDifferences($wanted) {\n"
	"    $diff = @()\n"
	"    $now = @(Get-GpupPolicy)\n"
	"    for ($i = 0; $i -lt $wanted.Count; $i++) {\n"
	"        $n = $now[$i]\n"
	"        $w = $wanted[$i]\n"
	"        if (($n.Exists -ne $w.Exists) -or ($w.Exists -and (($n.Kind -ne $w.Kind) -or ($n.Value -ne $w.Value)))) {\n"
	"            $was = if ($n.Exists) { \"$($n.Value) ($($n.Kind))\" } else { 'absent' }\n"
	"            $want = if ($w.Exists) { \"$($w.Value) ($($w.Kind))\" } else { 'absent' }\n"
	"            $diff += \"policy $($w.Name) is $was (want $want)\"\n"
	"        }\n"
	"    }\n"
	"    return ,$diff\n"
	"}\n"
	"\n"
	"function Set-GpupPolicy($wanted) {\n"
	"    foreach ($w in $wanted) {\n"
	"        if ($w.Exists) {\n"
	"            if (-not (Test-Path -LiteralPath $policyKey)) {\n"
	"                New-Item -Path $policyKey -Force | Out-Null\n"
	"                Write-Host \"Created $policyKey\"\n"
	"            }\n"
	"            New-ItemProperty -LiteralPath $policyKey -Name $w.Name -PropertyType $w.Kind -Value $w.Value -Force | Out-Null\n"
	"            Write-Host \"Policy $($w.Name) set to $($w.Value)\"\n"
	"        } elseif ((Test-Path -LiteralPath $policyKey) -and ((Get-Item -LiteralPath $policyKey).GetValueNames() -contains $w.Name)) {\n"
	"            Remove-ItemProperty -LiteralPath $policyKey -Name $w.Name\n"
	"            Write-Host \"Policy $($w.Name) removed\"\n"
	"        }\n"
	"    }\n"
	"}\n"
	"\n"
	"# Record the VM's settings and the policy values as they are, before the\n"
	"# first change. A record already there is older (the state before gpup)\n"
	"# and stays.\n"
	"function Save-GpupRecord($adapters) {\n"
	"    if ([System.IO.File]::Exists($recordPath)) {\n"
	"        Write-Host \"VM '$VMName': keeping the earlier record of its settings, $recordPath\"\n"
	"        return\n"
	"    }\n"
	"    $record = [ordered]@{\n"
	"        Schema                    = 1\n"
	"        VMId                      = [string]$vm.Id\n"
	"        VMName                    = $VMName\n"
	"        GuestControlledCacheTypes = [bool]$vm.GuestControlledCacheTypes\n"
	"        LowMemoryMappedIoSpace    = [string]$vm.LowMemoryMappedIoSpace\n"
	"        HighMemoryMappedIoSpace   = [string]$vm.HighMemoryMappedIoSpace\n"
	"        Adapters                  = @(foreach ($a in $adapters) { ConvertTo-GpupAdapter $a })\n"
	"        Policy                    = @(Get-GpupPolicy)\n"
	"        PolicyKeyExisted          = [bool](Test-Path -LiteralPath $policyKey)\n"
	"    }\n"
	"    [System.IO.Directory]::CreateDirectory($StateDir) | Out-Null\n"
	"    $tmp = \"$recordPath.tmp\"\n"
	"    [System.IO.File]::WriteAllText($tmp, (ConvertTo-Json -InputObject $record -Depth 5), (New-Object System.Text.UTF8Encoding $false))\n"
	"    [System.IO.File]::Move($tmp, $recordPath)\n"
	"    Write-Host \"VM '$VMName': recorded its settings before the change in $recordPath\"\n"
	"}\n"
	"\n"
	"# Bring the policy values, the VM's adapters, cache type and MMIO to the\n"
	"# wanted ones, changing only what differs (nothing at all: \"no change\"),\n"
	"# then check the result through Hyper-V. $record: save the state first.\n"
	"function Set-GpupState($policyWant, $wanted, [bool] $cache, [UInt64] $low, [UInt64] $high, [bool] $record) {\n"
	"    $adapters = @(Hyper-V\\Get-VMGpuPartitionAdapter -VM $vm)\n"
	"    $policyDiff = Get-GpupPolicyDifferences $policyWant\n"
	"    $adapterDiff = Get-GpupAdapterDifferences $adapters $wanted\n"
	"    $vmDiff = Get-GpupVMDifferences $vm $cache $low $high\n"
	"    if (($policyDiff.Count + $adapterDiff.Count + $vmDiff.Count) -eq 0) {\n"
	"        Write-Host \"VM '$VMName': already as planned: no change.\"\n"
	"    } else {\n"
	"        foreach ($d in ($policyDiff + $adapterDiff + $vmDiff)) {\n"
	"            Write-Host \"VM '$VMName': $d\"\n"
	"        }\n"
	"        if ($record) {\n"
	"            Save-GpupRecord $adapters\n"
	"        }\n"
	"        if ($policyDiff.Count -ne 0) {\n"
	"            Set-GpupPolicy $policyWant\n"
	"        }\n"
	"        if (($adapterDiff.Count + $vmDiff.Count) -ne 0) {\n"
	"            $restart = Stop-GpupVM\n"
	"            try {\n"
	"                if ($adapterDiff.Count -ne 0) {\n"
	"                    Set-GpupAdapters $adapters $wanted\n"
	"                }\n"
	"                if ($vmDiff.Count -ne 0) {\n"
	"                    Hyper-V\\Set-VM -VM $vm -GuestControlledCacheTypes $cache -LowMemoryMappedIoSpace $low -HighMemoryMappedIoSpace $high\n"
	"                    Write-Host \"Set GuestControlledCacheTypes $cache, MMIO Low $low, High $high\"\n"
	"                }\n"
	"            } finally {\n"
	"                if ($restart) {\n"
	"                    Hyper-V\\Start-VM -VM $vm\n"
	"                    Write-Host \"Started VM '$VMName' again\"\n"
	"                }\n"
	"            }\n"
	"        }\n"
	"    }\n"
	"    # Verify through Hyper-V itself.\n"
	"    $script:vm = Hyper-V\\Get-VM -Id $vm.Id\n"
	"    $after = (Get-GpupPolicyDifferences $policyWant) +\n"
	"        (Get-GpupAdapterDifferences @(Hyper-V\\Get-VMGpuPartitionAdapter -VM $vm) $wanted) +\n"
	"        (Get-GpupVMDifferences $vm $cache $low $high)\n"
	"    if ($after.Count -ne 0) {\n"
	"        throw (\"Verification failed for VM '$VMName': \" + ($after -join '; '))\n"
	"    }\n"
	"}\n";

static const char ps_apply[] =
	"\n"
	"# The GPU as this host lists it: by the instance path gpup resolved, or by\n"
	"# the --gpu choice resolved here (auto, VEN_xxxx[&DEV_xxxx...], vvvv[:dddd]).\n"
	"if (Get-Command -Name 'Hyper-V\\Get-VMHostPartitionableGpu' -ErrorAction SilentlyContinue) {\n"
	"    $hostGpus = @(Hyper-V\\Get-VMHostPartitionableGpu)\n"
	"} else {\n"
	"    $hostGpus = @(Hyper-V\\Get-VMPartitionableGpu)\n"
	"}\n"
	"$matching = @($hostGpus | Where-Object { $_.Name -eq $Gpu })\n"
	"if ($matching.Count -eq 0 -and $Gpu -eq 'auto') {\n"
	"    $matching = $hostGpus\n"
	"} elseif ($matching.Count -eq 0) {\n"
	"    $id = $Gpu\n"
	"    if ($id -match '^([0-9A-Fa-f]{4})(:([0-9A-Fa-f]{4}))?$') {\n"
	"        $id = \"VEN_$($Matches[1])&DEV_$($Matches[3])\"\n"
	"    }\n"
	"    if ($id -notmatch 'VEN_[0-9A-Fa-f]{4}') {\n"
	"        throw \"GPU '$Gpu': expected 'auto', an instance path, VEN_xxxx[&DEV_xxxx] or vvvv[:dddd].\"\n"
	"    }\n"
	"    $fields = @([regex]::Matches($id, '(?i)VEN_[0-9A-F]{4}|DEV_[0-9A-F]{4}|SUBSYS_[0-9A-F]{8}|REV_[0-9A-F]{2}') | ForEach-Object { $_.Value })\n"
	"    $matching = @($hostGpus | Where-Object {\n"
	"            $name = $_.Name\n"
	"            @($fields | Where-Object { $name -notmatch \"(?i)(^|[^0-9A-Z])$_([^0-9A-Z]|$)\" }).Count -eq 0\n"
	"        })\n"
	"}\n"
	"if ($matching.Count -ne 1) {\n"
	"    $names = @($hostGpus | ForEach-Object { $_.Name })\n"
	"    throw \"GPU '$Gpu': $($matching.Count) of this host's $($names.Count) partitionable GPUs match ($($names -join ', ')).\"\n"
	"}\n"
	"$hostGpu = $matching[0]\n"
	"if (($UseInstancePath -ne 0) -and -not $canInstancePath) {\n"
	"    throw \"This host's Add-VMGpuPartitionAdapter has no -InstancePath (Windows 10 / Server 2022); render the script with --host-os win10.\"\n"
	"}\n"
	"\n"
	"# One resource's quotas from its share: '' = the GPU's own Min/Optimal/Max;\n"
	"# 'P%' = P% of the GPU's MaxPartition, rounded down (decimal arithmetic is\n"
	"# exact here: 50% of 2^64-1 is 9223372036854775807); 'N' = N; or\n"
	"# 'MIN:OPT:MAX' of those.\n"
	"function Get-GpupQuota([string] $r, [string] $spec) {\n"
	"    $hostMin = [UInt64]$hostGpu.\"MinPartition$r\"\n"
	"    $hostMax = [UInt64]$hostGpu.\"MaxPartition$r\"\n"
	"    if ($spec -eq '') {\n"
	"        return @($hostMin, [UInt64]$hostGpu.\"OptimalPartition$r\", $hostMax)\n"
	"    }\n"
	"    $parts = @($spec -split ':')\n"
	"    if ($parts.Count -eq 1) {\n"
	"        $parts = @($spec, $spec, $spec)\n"
	"    }\n"
	"    if ($parts.Count -ne 3) {\n"
	"        throw \"${r} '$spec': expected P%, N or MIN:OPT:MAX.\"\n"
	"    }\n"
	"    $v = @(foreach ($p in $parts) {\n"
	"            if (($p -match '^(\\d{1,3}(\\.\\d{1,6})?)%$') -and ([decimal]$Matches[1] -le 100)) {\n"
	"                [UInt64][Math]::Floor([decimal]$hostMax * [decimal]$Matches[1] / 100)\n"
	"            } elseif (($p -match '^\\d{1,20}$') -and ([decimal]$p -le [decimal][UInt64]::MaxValue)) {\n"
	"                [UInt64]$p\n"
	"            } else {\n"
	"                throw \"${r} '$spec': '$p' is neither a percentage (50%) nor an unsigned 64-bit number.\"\n"
	"            }\n"
	"        })\n"
	"    if (($v[0] -gt $v[1]) -or ($v[1] -gt $v[2])) {\n"
	"        throw \"${r}: Min $($v[0]), Optimal $($v[1]), Max $($v[2]); Hyper-V needs Min <= Optimal <= Max.\"\n"
	"    }\n"
	"    if ($v[0] -lt $hostMin) {\n"
	"        throw \"${r}: Min $($v[0]) is below the GPU's MinPartition$r $hostMin.\"\n"
	"    }\n"
	"    if ($v[2] -gt $hostMax) {\n"
	"        throw \"${r}: Max $($v[2]) exceeds the GPU's MaxPartition$r $hostMax.\"\n"
	"    }\n"
	"    return $v\n"
	"}\n"
	"\n"
	"# The wanted adapter, every quota computed and checked before any change.\n"
	"$shares = [ordered]@{ VRAM = $VRAM; Encode = $Encode; Decode = $Decode; Compute = $Compute }\n"
	"$want = [ordered]@{ InstancePath = '' }\n"
	"if ($UseInstancePath -ne 0) {\n"
	"    $want.InstancePath = [string]$hostGpu.Name\n"
	"}\n"
	"$hasAdapter = @(Hyper-V\\Get-VMGpuPartitionAdapter -VM $vm).Count -ne 0\n"
	"foreach ($r in $shares.Keys) {\n"
	"    $v = Get-GpupQuota $r $shares[$r]\n"
	"    # A new partition must fit in what other VMs left of the GPU.\n"
	"    if (-not $hasAdapter -and ($v[2] -gt [UInt64]$hostGpu.\"Available$r\")) {\n"
	"        throw \"${r}: Max $($v[2]) exceeds the GPU's Available$r $($hostGpu.\"Available$r\") (other partitions hold the rest; lower the share or remove them).\"\n"
	"    }\n"
	"    $want[\"MinPartition$r\"] = [string]$v[0]\n"
	"    $want[\"MaxPartition$r\"] = [string]$v[2]\n"
	"    $want[\"OptimalPartition$r\"] = [string]$v[1]\n"
	"}\n"
	"\n"
	"# Windows Server: allow partitioning devices that are not validated for\n"
	"# secure/supported assignment (host-wide policy values, DWORD 0).\n"
	"$policyWant = @()\n"
	"if ($ServerPolicy -ne 0) {\n"
	"    $policyWant = @(foreach ($name in 'RequireSecureDeviceAssignment', 'RequireSupportedDeviceAssignment') {\n"
	"            [ordered]@{ Name = $name; Exists = $true; Kind = 'DWord'; Value = '0' }\n"
	"        })\n"
	"}\n"
	"\n"
	"Set-GpupState $policyWant @($want) $true $LowMemoryMappedIoSpace $HighMemoryMappedIoSpace $true\n"
	"$a = @(Hyper-V\\Get-VMGpuPartitionAdapter -VM $vm)[0]\n"
	"Write-Host \"VM '$VMName' has its GPU partition on $($hostGpu.Name):\"\n"
	"foreach ($r in $shares.Keys) {\n"
	"    Write-Host ('  {0,-8} Min {1}  Optimal {2}  Max {3}' -f $r, $a.\"MinPartition$r\", $a.\"OptimalPartition$r\", $a.\"MaxPartition$r\")\n"
	"}\n"
	"Write-Host ('  MMIO     Low {0} MiB  High {1} MiB  GuestControlledCacheTypes {2}' -f ($vm.LowMemoryMappedIoSpace / 1048576), ($vm.HighMemoryMappedIoSpace / 1048576), $vm.GuestControlledCacheTypes)\n"
	"exit 0\n";

static const char ps_revert[] =
	"\n"
	"# What to restore: the record the first forward run made ($recordPath) or,\n"
	"# once restored, the same record renamed ($revertedPath), so that a second\n"
	"# revert changes nothing; without either, Hyper-V's defaults.\n"
	"$from = $null\n"
	"if ([System.IO.File]::Exists($recordPath)) {\n"
	"    $from = $recordPath\n"
	"} elseif ([System.IO.File]::Exists($revertedPath)) {\n"
	"    $from = $revertedPath\n"
	"}\n"
	"$policyWant = @()\n"
	"if ($from) {\n"
	"    Write-Host \"VM '$VMName': restoring the settings recorded in $from\"\n"
	"    $saved = [System.IO.File]::ReadAllText($from) | ConvertFrom-Json\n"
	"    $wanted = @(foreach ($a in $saved.Adapters) { ConvertTo-GpupAdapter $a })\n"
	"    $cache = [bool]$saved.GuestControlledCacheTypes\n"
	"    $low = [UInt64]$saved.LowMemoryMappedIoSpace\n"
	"    $high = [UInt64]$saved.HighMemoryMappedIoSpace\n"
	"    if ($ServerPolicy -ne 0) {\n"
	"        $policyWant = @(foreach ($p in $saved.Policy) {\n"
	"                [ordered]@{ Name = [string]$p.Name; Exists = [bool]$p.Exists; Kind = [string]$p.Kind; Value = [string]$p.Value }\n"
	"            })\n"
	"    }\n"
	"} else {\n"
	"    Write-Host \"VM '$VMName': no record of its settings before gpup in ${StateDir}: restoring Hyper-V's defaults (no GPU partition, MMIO Low $($LowMemoryMappedIoSpace / 1048576) MiB, High $($HighMemoryMappedIoSpace / 1048576) MiB).\"\n"
	"    if ($ServerPolicy -ne 0) {\n"
	"        Write-Host 'The host policy values stay as they are: there is no record of them.'\n"
	"    }\n"
	"    $wanted = @()\n"
	"    $cache = $false\n"
	"    $low = $LowMemoryMappedIoSpace\n"
	"    $high = $HighMemoryMappedIoSpace\n"
	"}\n"
	"\n"
	"Set-GpupState $policyWant $wanted $cache $low $high $false\n"
	"# A policy key the forward run created goes again once it is empty.\n"
	"if ($policyWant.Count -ne 0 -and -not $saved.PolicyKeyExisted -and (Test-Path -LiteralPath $policyKey) -and\n"
	"    (@((Get-Item -LiteralPath $policyKey).GetValueNames()).Count -eq 0)) {\n"
	"    Remove-Item -LiteralPath $policyKey\n"
	"    Write-Host \"Removed $policyKey\"\n"
	"}\n"
	"if ($from -eq $recordPath) {\n"
	"    if ([System.IO.File]::Exists($revertedPath)) {\n"
	"        [System.IO.File]::Delete($revertedPath)\n"
	"    }\n"
	"    [System.IO.File]::Move($recordPath, $revertedPath)\n"
	"}\n"
	"Write-Host \"VM '$VMName' has $(@(Hyper-V\\Get-VMGpuPartitionAdapter -VM $vm).Count) GPU partition adapter(s); MMIO Low $($vm.LowMemoryMappedIoSpace / 1048576) MiB, High $($vm.HighMemoryMappedIoSpace / 1048576) MiB; GuestControlledCacheTypes $($vm.GuestControlledCacheTypes).\"\n"
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
	const char *gpu = plan->instance_path ? plan->instance_path : plan->gpu_select;
	bool first = true;
	int rc = 0;

	if (!plan->vm_name || !gp_hc_valid_utf8(plan->vm_name))
		return gp_error_set(err, GP_ERR_INVALID, "the VM name is missing or not UTF-8");
	if (!plan->revert && (!gpu || !gp_hc_valid_utf8(gpu)))
		return gp_error_set(err, GP_ERR_INVALID, "the GPU is missing or not UTF-8");

	/* UTF-8 BOM: Windows PowerShell 5.1 reads BOM-less scripts as ANSI. */
	fputs("\xef\xbb\xbf", out);
	if (plan->revert)
		fputs("# Generated by gpup hostconf --revert: restores one Hyper-V VM's GPU partition,\n"
		      "# MMIO and cache settings (and with --server the host policy values) as\n"
		      "# recorded before gpup changed them, or Hyper-V's defaults without a record.\n", out);
	else
		fputs("# Generated by gpup hostconf: GPU partitioning (GPU-P) for one Hyper-V VM.\n"
		      "# The VM's settings before the first change are recorded on the host\n"
		      "# (%ProgramData%\\gpup) for `gpup hostconf --revert`.\n", out);
	fputs("# Run it in an elevated PowerShell on the Hyper-V host:\n"
	      "#   powershell.exe -NoProfile -ExecutionPolicy Bypass -File <this file>\n"
	      "# Every value is a parameter below (override with -Name value). Running it\n"
	      "# again once the VM is configured changes nothing.\n", out);
	if (!plan->revert) {
		if (plan->gpu_label)
			comment(out, "GPU: ", plan->gpu_label);
		if (!plan->instance_path)
			comment(out, "GPU: ", "chosen on the host from the $Gpu parameter");
		comment(out, "Host: ", plan->host_os == GP_HOST_WIN10
				       ? "Windows 10 / Server 2022 (no -InstancePath: Hyper-V picks the GPU)"
				       : "Windows 11 / Server 2025 (Add-VMGpuPartitionAdapter -InstancePath)");
		fputs("# Quotas: each resource's share ('P%' of the GPU's MaxPartition, a raw value,\n"
		      "# or MIN:OPT:MAX; '' = the GPU's own Min/Optimal/Max), computed on the host.\n", out);
		for (int r = 0; plan->have_quota && r < GP_RES_COUNT; r++)
			fprintf(out, "#   %-8s on the listed GPU: Min %" PRIu64 "  Optimal %" PRIu64 "  Max %" PRIu64 "\n",
				gp_gpu_res_name(r), plan->quota[r].min, plan->quota[r].optimal,
				plan->quota[r].max);
	}
	if (plan->server)
		comment(out, "Server: ", plan->revert
				? "restores the recorded HyperV device-assignment policy values"
				: "sets the HyperV device-assignment policies to 0");
	comment(out, "MMIO: ", plan->mmio_reason);
	fputs("#Requires -RunAsAdministrator\n"
	      "#Requires -Modules Hyper-V\n"
	      "[CmdletBinding()]\n"
	      "param(\n", out);

	rc = param_str(out, &first, "string", "VMName", plan->vm_name, err);
	if (!plan->revert) {
		if (rc == 0)
			rc = param_str(out, &first, "string", "Gpu", gpu, err);
		if (rc == 0)
			rc = param_u64(out, &first, "int", "UseInstancePath",
				       plan->host_os == GP_HOST_WIN10 ? 0 : 1, err);
		for (int r = 0; r < GP_RES_COUNT && rc == 0; r++) {
			char spec[96];

			gp_share_format(&plan->share[r], spec, sizeof(spec));
			rc = param_str(out, &first, "string", gp_gpu_res_name(r), spec, err);
		}
	}
	if (rc == 0)
		rc = param_u64(out, &first, "UInt64", "LowMemoryMappedIoSpace", plan->low_mmio, err);
	if (rc == 0)
		rc = param_u64(out, &first, "UInt64", "HighMemoryMappedIoSpace", plan->high_mmio, err);
	if (rc == 0)
		rc = param_u64(out, &first, "int", "StopVM", plan->stop_vm ? 1 : 0, err);
	if (rc == 0)
		rc = param_u64(out, &first, "int", "ServerPolicy", plan->server ? 1 : 0, err);
	/* '' = %ProgramData%\gpup, resolved by the script. */
	if (rc == 0)
		rc = param_str(out, &first, "string", "StateDir", "", err);
	if (rc)
		return rc;
	fputs("\n)\n", out);
	fputs(ps_common, out);
	fputs(plan->revert ? ps_revert : ps_apply, out);
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
