using System.Runtime.InteropServices;

namespace MaeMl.Files;

/// <summary>Whether a path (links followed) is a regular file: a pipe (FIFO), socket or device would block or never
/// end when read, so readers check this before opening. Linux asks <c>statx</c> (its layout is the same on every
/// architecture); elsewhere a non-empty file counts as regular.</summary>
internal static class FileKind
{
    [DllImport("libc", EntryPoint = "statx", SetLastError = true)]
    static extern unsafe int StatX(int dirfd, string path, int flags, uint mask, byte* buffer);

    const int AtFdCwd = -100;
    const uint StatxType = 1;
    const int ModeOffset = 28, TypeMask = 0xF000, Regular = 0x8000;
    static bool statxMissing;

    /// <summary>True for a regular file (an empty one included); false for a directory, pipe, socket or device, or a missing path.</summary>
    public static unsafe bool IsRegularFile(string path)
    {
        if (OperatingSystem.IsLinux() && !statxMissing)
        {
            try
            {
                byte* buffer = stackalloc byte[256];
                if (StatX(AtFdCwd, path, 0, StatxType, buffer) != 0) return false;
                return (*(ushort*)(buffer + ModeOffset) & TypeMask) == Regular;
            }
            catch (EntryPointNotFoundException) { statxMissing = true; }
            catch (DllNotFoundException) { statxMissing = true; }
        }
        try
        {
            var info = new FileInfo(path);
            return info.Exists && info.Length > 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }

    /// <summary>Throws an <see cref="InvalidDataException"/> naming <paramref name="path"/> when it exists but is not a regular file.</summary>
    public static void RequireRegular(string path, string what)
    {
        if (File.Exists(path) && !IsRegularFile(path))
            throw new InvalidDataException($"{what} '{path}' is not a regular file (a pipe, socket or device); MaeMl does not read those");
    }
}
