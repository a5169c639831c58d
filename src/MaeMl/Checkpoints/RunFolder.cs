using System.Diagnostics;
using System.Text.RegularExpressions;
using MaeMl.Files;

namespace MaeMl.Checkpoints;

/// <summary>
/// Safety for a training run's output folder: an exclusive lock (one run per folder), a sweep of the temporary files
/// that killed runs left behind, and writes that never follow a symbolic link planted in the folder.
/// </summary>
internal static partial class RunFolder
{
    /// <summary>The lock file; held open with <see cref="FileShare.None"/> (an OS lock the kernel drops when the process dies).</summary>
    public const string LockFileName = ".maeml-run.lock";
    const string HolderFileName = ".maeml-run.holder";

    /// <summary>Creates <paramref name="dir"/>, takes its lock (<see cref="Lock"/>) and sweeps what killed runs left (<see cref="SweepStaleTemporaries"/>):
    /// how every run starts with its folder.</summary>
    public static IDisposable Open(string dir, Action<string> log)
    {
        Directory.CreateDirectory(dir);
        var held = Lock(dir);   // one run per folder; the second gets one line naming the holder
        SweepStaleTemporaries(dir, log);
        return held;
    }

    /// <summary>Takes the folder's lock for the life of the returned object; throws an <see cref="IOException"/> naming the
    /// folder and the holder's process id when another run holds it.</summary>
    public static IDisposable Lock(string dir)
    {
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, LockFileName);
        RefuseLink(path);
        FileStream stream;
        try { stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None); }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException)
        {
            string holder;
            try { holder = File.ReadAllText(Path.Combine(dir, HolderFileName)).Trim(); }
            catch (Exception r) when (r is IOException or UnauthorizedAccessException) { holder = "pid unknown"; }
            throw new IOException($"'{dir}' is in use by another maeml run ({holder}); wait for it to finish or choose another output folder");
        }
        AtomicFile.Write(Path.Combine(dir, HolderFileName), s =>
        {
            using var w = new StreamWriter(s, leaveOpen: true);
            w.Write($"pid {Environment.ProcessId} on {Environment.MachineName}, since {DateTime.Now:yyyy-MM-dd HH:mm:ss}");
        });
        return stream;
    }

    [GeneratedRegex(@"^\..+\.(\d+)\.[0-9a-f]{32}\.tmp$")]
    private static partial Regex TempName();

    /// <summary>Deletes the <see cref="AtomicFile"/> temporaries in <paramref name="dir"/> whose writing process is gone
    /// (a run killed mid-save); those of live processes are kept. Returns the deleted paths.</summary>
    public static List<string> SweepStaleTemporaries(string dir, Action<string>? log = null)
    {
        var deleted = new List<string>();
        if (!Directory.Exists(dir)) return deleted;
        foreach (var file in Directory.EnumerateFiles(dir))
        {
            var m = TempName().Match(Path.GetFileName(file));
            if (!m.Success || !int.TryParse(m.Groups[1].Value, out var pid) || IsRunning(pid)) continue;
            try
            {
                File.Delete(file);
                deleted.Add(file);
                log?.Invoke($"removed '{file}', left by a run (pid {pid}) that ended mid-save");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
        return deleted;
    }

    static bool IsRunning(int pid)
    {
        if (pid == Environment.ProcessId) return true;
        try { using var p = Process.GetProcessById(pid); return !p.HasExited; }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException) { return false; }
    }

    /// <summary>Writes a small text file atomically: a symbolic link at <paramref name="path"/> is replaced, never followed.</summary>
    public static void WriteText(string path, string text) => AtomicFile.Write(path, s =>
    {
        using var w = new StreamWriter(s, leaveOpen: true);
        w.Write(text);
    });

    /// <summary>Copies a file atomically (readers see the old copy or the whole new one); a link at the target is replaced, not followed.</summary>
    public static void Copy(string source, string target) => AtomicFile.Write(target, s =>
    {
        using var input = File.OpenRead(source);
        input.CopyTo(s);
    });

    /// <summary>Throws when <paramref name="path"/> is a symbolic link: run files are not written through links.</summary>
    public static void RefuseLink(string path)
    {
        var info = new FileInfo(path);
        if (info.LinkTarget is { } target)
            throw new IOException($"'{path}' is a symbolic link (to '{target}'); MaeMl does not write run files through links: remove it");
    }
}
