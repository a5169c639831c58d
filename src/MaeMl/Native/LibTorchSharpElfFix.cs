// Removes TorchSharp 0.107.0's needless GLIBCXX_3.4.32 requirement from libLibTorchSharp.so.
//
// This file is compiled twice: into the MaeMl library (MAEML_LIBRARY defined: the pure patcher only)
// and, by MSBuild's RoslynCodeTaskFactory, into the build task shipped in the package's
// buildTransitive folder (the task class below is included there), so build and publish outputs of
// every consumer are fixed. It must therefore use nothing but the base class library.
#nullable enable
using System;
using System.Runtime.InteropServices;
using System.IO;
using System.Text;

namespace MaeMl.Native
{
    /// <summary>
    /// libLibTorchSharp.so in TorchSharp 0.107.0 was linked by GCC 13 and asks libstdc++ for the version
    /// <c>GLIBCXX_3.4.32</c>, which Debian 12 and Ubuntu 22.04 do not have, so the library fails to load.
    /// The only symbol bound to that version is <c>std::ios_base_library_init()</c>, which no relocation uses.
    /// <see cref="Patch"/> makes that symbol unversioned and unlinks the version requirement, which is
    /// what <c>patchelf --clear-symbol-version</c> does. The result loads on old and new systems alike.
    /// </summary>
    public static class LibTorchSharpElfFix
    {
        /// <summary>The version string that is removed.</summary>
        public const string Version = "GLIBCXX_3.4.32";

        const uint ShtDynsym = 11, ShtGnuVersym = 0x6fffffff, ShtGnuVerneed = 0x6ffffffe;

        /// <summary>Outcome of <see cref="Patch"/>.</summary>
        public enum Result
        {
            /// <summary>The requirement was removed and the file replaced.</summary>
            Patched,
            /// <summary>The file did not require <see cref="Version"/>; it was left as it was.</summary>
            AlreadyClean,
            /// <summary>Not a 64-bit little-endian ELF file; it was left as it was.</summary>
            NotElf64,
        }

        /// <summary>True when the system's libstdc++ lacks <see cref="Version"/>, so the fix is needed.</summary>
        public static bool SystemNeedsFix()
        {
            if (!RuntimeInformation.IsOSPlatform(OSPlatform.Linux)) return false;
            string[] dirs = { "/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib64", "/lib64", "/usr/lib", "/lib",
                              "/usr/lib/aarch64-linux-gnu", "/lib/aarch64-linux-gnu" };
            foreach (var dir in dirs)
            {
                var path = Path.Combine(dir, "libstdc++.so.6");
                if (!File.Exists(path)) continue;
                var bytes = File.ReadAllBytes(path);
                return IndexOf(bytes, Encoding.ASCII.GetBytes(Version + "\0")) < 0;
            }
            return true; // no system libstdc++ found: the fix is harmless, apply it
        }

        /// <summary>True when the ELF file still requires <see cref="Version"/>.</summary>
        public static bool RequiresVersion(string path) => Rewrite(File.ReadAllBytes(path), out _);

        /// <summary>Removes the requirement in place (atomically: temp file + rename). Idempotent.</summary>
        public static Result Patch(string path)
        {
            var bytes = File.ReadAllBytes(path);
            if (bytes.Length < 64 || bytes[0] != 0x7f || bytes[1] != (byte)'E' || bytes[2] != (byte)'L' || bytes[3] != (byte)'F'
                || bytes[4] != 2 || bytes[5] != 1)
                return Result.NotElf64;
            if (!Rewrite(bytes, out var patched)) return Result.AlreadyClean;
            var tmp = path + ".maeml-tmp";
            File.WriteAllBytes(tmp, patched!);
            File.Replace(tmp, path, null); // rename over the original: readers never see a half-written file
            return Result.Patched;
        }

        /// <summary>Core of the fix on an in-memory ELF64 little-endian image; false when nothing to do.</summary>
        public static bool Rewrite(byte[] input, out byte[]? output)
        {
            output = null;
            if (input.Length < 64 || input[4] != 2 || input[5] != 1) return false;
            long shoff = BitConverter.ToInt64(input, 0x28);
            int shentsize = BitConverter.ToUInt16(input, 0x3A), shnum = BitConverter.ToUInt16(input, 0x3C);
            int versym = -1, verneed = -1, dynsym = -1;
            for (int i = 0; i < shnum; i++)
            {
                uint type = BitConverter.ToUInt32(input, (int)(shoff + i * shentsize + 4));
                if (type == ShtGnuVersym) versym = i; else if (type == ShtGnuVerneed) verneed = i; else if (type == ShtDynsym) dynsym = i;
            }
            if (versym < 0 || verneed < 0 || dynsym < 0) return false;
            long Sh(int index, int field) => shoff + index * shentsize + field;
            long needOff = BitConverter.ToInt64(input, (int)Sh(verneed, 0x18));
            int strIndex = (int)BitConverter.ToUInt32(input, (int)Sh(verneed, 0x28));
            long strOff = BitConverter.ToInt64(input, (int)Sh(strIndex, 0x18));
            int needCount = (int)BitConverter.ToUInt32(input, (int)Sh(verneed, 0x2C)); // sh_info = number of Verneed entries

            var buf = (byte[])input.Clone();
            bool changed = false;
            long need = needOff;
            for (int n = 0; n < needCount; n++)
            {
                int cnt = BitConverter.ToUInt16(buf, (int)need + 2);
                long auxField = need + 8; // where the link to the current aux lives (vn_aux, then vna_next)
                long aux = need + BitConverter.ToUInt32(buf, (int)need + 8);
                for (int a = 0; a < cnt; a++)
                {
                    uint nameOff = BitConverter.ToUInt32(buf, (int)aux + 8);
                    uint next = BitConverter.ToUInt32(buf, (int)aux + 12);
                    if (ReadCString(buf, strOff + nameOff) == Version)
                    {
                        ushort versionIndex = (ushort)(BitConverter.ToUInt16(buf, (int)aux + 6) & 0x7fff);
                        // 1. every symbol bound to that version becomes global/unversioned (index 1)
                        long symOff = BitConverter.ToInt64(buf, (int)Sh(versym, 0x18));
                        long symSize = BitConverter.ToInt64(buf, (int)Sh(versym, 0x20));
                        for (long s = 0; s < symSize / 2; s++)
                        {
                            int at = (int)(symOff + 2 * s);
                            if ((BitConverter.ToUInt16(buf, at) & 0x7fff) == versionIndex) WriteU16(buf, at, 1);
                        }
                        // 2. unlink the Vernaux
                        uint linkValue = BitConverter.ToUInt32(buf, (int)auxField);
                        WriteU32(buf, auxField, next == 0 ? 0 : linkValue + next);
                        WriteU16(buf, need + 2, (ushort)(cnt - 1));
                        changed = true;
                        break;
                    }
                    auxField = aux + 12;
                    aux += next;
                }
                uint vnNext = BitConverter.ToUInt32(buf, (int)need + 12);
                if (vnNext == 0) break;
                need += vnNext;
            }
            if (changed) output = buf;
            return changed;
        }

        static string ReadCString(byte[] b, long at)
        {
            int end = (int)at;
            while (end < b.Length && b[end] != 0) end++;
            return Encoding.ASCII.GetString(b, (int)at, end - (int)at);
        }

        static void WriteU16(byte[] b, long at, ushort v) { b[at] = (byte)v; b[at + 1] = (byte)(v >> 8); }
        static void WriteU32(byte[] b, long at, uint v) { for (int i = 0; i < 4; i++) b[at + i] = (byte)(v >> (8 * i)); }

        static int IndexOf(byte[] haystack, byte[] needle)
        {
            for (int i = 0; i <= haystack.Length - needle.Length; i++)
            {
                int j = 0;
                while (j < needle.Length && haystack[i + j] == needle[j]) j++;
                if (j == needle.Length) return i;
            }
            return -1;
        }
    }

#if !MAEML_LIBRARY
    /// <summary>MSBuild task: applies <see cref="LibTorchSharpElfFix"/> to the given files when the system needs it.</summary>
    public class FixLibTorchSharpGlibcxx : Microsoft.Build.Utilities.Task
    {
        public Microsoft.Build.Framework.ITaskItem[] Files { get; set; } = Array.Empty<Microsoft.Build.Framework.ITaskItem>();

        public override bool Execute()
        {
            if (!LibTorchSharpElfFix.SystemNeedsFix()) return true;
            foreach (var item in Files)
            {
                var path = item.ItemSpec;
                if (!File.Exists(path)) continue;
                try
                {
                    var result = LibTorchSharpElfFix.Patch(path);
                    if (result == LibTorchSharpElfFix.Result.Patched)
                        Log.LogMessage(Microsoft.Build.Framework.MessageImportance.High,
                            $"MaeMl: removed the {LibTorchSharpElfFix.Version} requirement from {path} (this system's libstdc++ lacks it)");
                }
                catch (Exception e)
                {
                    Log.LogWarning($"MaeMl: could not patch {path}: {e.Message}. TorchSharp may fail to load with 'GLIBCXX_3.4.32 not found'.");
                }
            }
            return true;
        }
    }
#endif
}
