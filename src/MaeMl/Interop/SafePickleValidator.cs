using System.Buffers.Binary;
using System.Text;

namespace MaeMl.Interop;

/// <summary>A pickle that names a callable outside the allow-list, or that cannot be parsed safely (never executed). An <see cref="IOException"/>, like the other file errors.</summary>
public sealed class UnsafePickleException(string message) : IOException(message);

/// <summary>
/// Walks every opcode of a pickle (protocols 0-5) without executing it and refuses any reference to a Python global
/// that is not on an allow-list of what <c>torch.save</c> writes for state dicts and MAE training checkpoints
/// (<c>torch._utils._rebuild_tensor_v2</c>, <c>torch.FloatStorage</c> and the other storages,
/// <c>collections.OrderedDict</c>, ...). Globals are the only way a pickle can reach a callable
/// (REDUCE, NEWOBJ, INST, OBJ and BUILD act on them), so with the globals checked nothing else can be invoked.
/// Extension-registry opcodes (EXT1/2/4) and unknown opcodes are refused too.
/// PyBridge's unpickler (Razorvine.Pickle) would turn an unknown global into a dictionary object instead of failing,
/// which is why this pre-scan runs first.
/// </summary>
internal static class SafePickleValidator
{
    static readonly HashSet<string> AllowedGlobals = new(StringComparer.Ordinal)
    {
        "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
        "collections.OrderedDict",
        // MAE's main_pretrain/main_finetune save {'model', 'optimizer', 'epoch', 'scaler', 'args'}; args is a Namespace.
        // Razorvine.Pickle maps it to a plain dictionary: no constructor runs.
        "argparse.Namespace",
    };

    static readonly HashSet<string> StorageTypes = new(StringComparer.Ordinal)
    {
        "FloatStorage", "DoubleStorage", "HalfStorage", "BFloat16Storage", "LongStorage", "IntStorage",
        "ShortStorage", "CharStorage", "ByteStorage", "BoolStorage", "ComplexFloatStorage", "ComplexDoubleStorage",
    };

    /// <summary>Most values a pickle may hold on its stack at once, and most MARKs open at once. A state dict needs a few
    /// thousand and a dozen; far more means a file built to exhaust the reader (deep nesting overflows recursive readers).</summary>
    public const int MaxStackDepth = 100_000, MaxMarkDepth = 1_000;

    /// <summary>True when <c>module.name</c> may appear in a checkpoint pickle.</summary>
    public static bool IsAllowed(string module, string name) =>
        AllowedGlobals.Contains($"{module}.{name}") || (module == "torch" && StorageTypes.Contains(name));

    /// <summary>Throws <see cref="UnsafePickleException"/> naming <paramref name="file"/> and the offending global or opcode.</summary>
    /// <returns>The globals the pickle references (all allowed).</returns>
    public static IReadOnlyCollection<string> Validate(ReadOnlySpan<byte> pickle, string file)
    {
        var globals = new HashSet<string>(StringComparer.Ordinal);
        var memo = new Dictionary<long, string?>();
        var recent = new List<string?>();   // values pushed recently, strings only (null = something else); resolves STACK_GLOBAL
        int pos = 0;

        UnsafePickleException Corrupt(string why) => new($"'{file}' is not a valid pickle ({why} at byte {pos}); the file is truncated or corrupt");
        void Push(string? s) { recent.Add(s); if (recent.Count > 8) recent.RemoveAt(0); }

        // the stack height, with the heights at the open MARKs: bounds nesting and catches underflow
        int height = 0;
        var marks = new Stack<int>();
        UnsafePickleException Deep() => new($"'{file}' was refused: its pickle nests deeper than {MaxStackDepth} values or {MaxMarkDepth} marks (at byte {pos}); no weights file needs that");
        void Pop(int n) { if (height - n < (marks.Count > 0 ? marks.Peek() : 0)) throw Corrupt("stack underflow"); height -= n; }
        void Add(int n) { height += n; if (height > MaxStackDepth) throw Deep(); }
        void PopMark() { if (marks.Count == 0) throw Corrupt("no MARK to pop to"); height = marks.Pop(); }
        void Account(byte op)
        {
            switch (op)
            {
                case (byte)'(': marks.Push(height); if (marks.Count > MaxMarkDepth) throw Deep(); break;
                case (byte)'t': case (byte)'l': case (byte)'d': case 0x91: case (byte)'o': case (byte)'i': PopMark(); Add(1); break;
                case (byte)'e': case (byte)'u': case 0x90: PopMark(); Pop(1); Add(1); break;
                case (byte)'1': PopMark(); break;
                case (byte)'0': Pop(1); break;
                case (byte)'2': Pop(1); Add(2); break;
                case (byte)'R': case 0x81: case (byte)'a': case (byte)'b': case 0x86: case 0x93: Pop(2); Add(1); break;
                case 0x92: case (byte)'s': case 0x87: Pop(3); Add(1); break;
                case 0x85: case (byte)'Q': case 0x98: Pop(1); Add(1); break;
                case (byte)'.': Pop(1); break;
                case 0x94: case (byte)'p': case (byte)'q': case (byte)'r': case 0x80: case 0x95: break;
                default: Add(1); break;
            }
        }
        ReadOnlySpan<byte> Take(ReadOnlySpan<byte> data, long n)
        {
            if (n < 0 || pos + n > data.Length) throw Corrupt("unexpected end of data");
            var s = data.Slice(pos, (int)n);
            pos += (int)n;
            return s;
        }
        string Line(ReadOnlySpan<byte> data)
        {
            int end = data[pos..].IndexOf((byte)'\n');
            if (end < 0) throw Corrupt("unterminated text argument");
            var s = Encoding.Latin1.GetString(data.Slice(pos, end));
            pos += end + 1;
            return s;
        }
        void CheckGlobal(string module, string name, string opcode)
        {
            if (!IsAllowed(module, name))
                throw new UnsafePickleException(
                    $"'{file}' was refused: its pickle references the Python global '{module}.{name}' ({opcode}), which is not a tensor, " +
                    "storage or container that torch.save writes for weights. Loading it with Python's pickle could run code; MaeMl does not load it. " +
                    "Re-save only the weights (torch.save({'model': model.state_dict()}, path)) or use safetensors.");
            globals.Add($"{module}.{name}");
        }

        while (true)
        {
            if (pos >= pickle.Length) throw Corrupt("no STOP opcode");
            byte op = pickle[pos++];
            Account(op);
            switch (op)
            {
                case (byte)'.': // STOP
                    return globals;
                // --- no argument
                case (byte)'(': case (byte)'0': case (byte)'1': case (byte)'2': case (byte)'N': case (byte)'R':
                case (byte)'a': case (byte)'b': case (byte)'d': case (byte)'}': case (byte)'e': case (byte)'l':
                case (byte)']': case (byte)'o': case (byte)'s': case (byte)'t': case (byte)')': case (byte)'u':
                case 0x81: case 0x85: case 0x86: case 0x87: case 0x88: case 0x89: case 0x8f: case 0x90: case 0x91:
                case 0x92: case (byte)'Q': case 0x97: case 0x98:
                    Push(null);
                    break;
                case 0x94: // MEMOIZE
                    memo[memo.Count] = recent.Count > 0 ? recent[^1] : null;
                    break;
                // --- text-line arguments
                case (byte)'I': case (byte)'L': case (byte)'F': case (byte)'P':
                    Line(pickle); Push(null); break;
                case (byte)'S': { var s = Line(pickle).Trim('\'', '"'); Push(s); break; }
                case (byte)'V': Push(Line(pickle)); break;
                case (byte)'g': { var key = Line(pickle); Push(long.TryParse(key, out var k) && memo.TryGetValue(k, out var v) ? v : null); break; }
                case (byte)'p': { var key = Line(pickle); if (long.TryParse(key, out var k)) memo[k] = recent.Count > 0 ? recent[^1] : null; break; }
                case (byte)'c': { var module = Line(pickle); var name = Line(pickle); CheckGlobal(module, name, "GLOBAL"); Push(null); break; }
                case (byte)'i': { var module = Line(pickle); var name = Line(pickle); CheckGlobal(module, name, "INST"); Push(null); break; }
                case 0x93: // STACK_GLOBAL
                {
                    if (recent.Count < 2 || recent[^2] is not { } module || recent[^1] is not { } name)
                        throw new UnsafePickleException($"'{file}' was refused: a STACK_GLOBAL at byte {pos - 1} takes its name from values MaeMl cannot check statically");
                    CheckGlobal(module, name, "STACK_GLOBAL");
                    Push(null);
                    break;
                }
                case 0x82: case 0x83: case 0x84:
                    throw new UnsafePickleException($"'{file}' was refused: it uses the pickle extension registry (EXT opcode at byte {pos - 1}), which can name any callable");
                // --- fixed-size arguments
                case (byte)'K': Take(pickle, 1); Push(null); break;
                case (byte)'h': { var k = Take(pickle, 1)[0]; Push(memo.GetValueOrDefault(k)); break; }
                case (byte)'q': { var k = Take(pickle, 1)[0]; memo[k] = recent.Count > 0 ? recent[^1] : null; break; }
                case (byte)'M': Take(pickle, 2); Push(null); break;
                case (byte)'J': Take(pickle, 4); Push(null); break;
                case (byte)'j': { var k = BinaryPrimitives.ReadUInt32LittleEndian(Take(pickle, 4)); Push(memo.GetValueOrDefault(k)); break; }
                case (byte)'r': { var k = BinaryPrimitives.ReadUInt32LittleEndian(Take(pickle, 4)); memo[k] = recent.Count > 0 ? recent[^1] : null; break; }
                case (byte)'G': Take(pickle, 8); Push(null); break;
                case 0x80: Take(pickle, 1); break;  // PROTO
                case 0x95: Take(pickle, 8); break;  // FRAME
                // --- length-prefixed arguments
                case 0x8a: Take(pickle, Take(pickle, 1)[0]); Push(null); break;                                    // LONG1
                case 0x8b: Take(pickle, BinaryPrimitives.ReadInt32LittleEndian(Take(pickle, 4))); Push(null); break; // LONG4
                case (byte)'C': Take(pickle, Take(pickle, 1)[0]); Push(null); break;                               // SHORT_BINBYTES
                case (byte)'B': Take(pickle, BinaryPrimitives.ReadUInt32LittleEndian(Take(pickle, 4))); Push(null); break;
                case 0x8e: case 0x96: Take(pickle, (long)BinaryPrimitives.ReadUInt64LittleEndian(Take(pickle, 8))); Push(null); break;
                case (byte)'U': Push(Encoding.Latin1.GetString(Take(pickle, Take(pickle, 1)[0]))); break;          // SHORT_BINSTRING
                case (byte)'T': Push(Encoding.Latin1.GetString(Take(pickle, BinaryPrimitives.ReadUInt32LittleEndian(Take(pickle, 4))))); break;
                case 0x8c: Push(Encoding.UTF8.GetString(Take(pickle, Take(pickle, 1)[0]))); break;                 // SHORT_BINUNICODE
                case (byte)'X': Push(Encoding.UTF8.GetString(Take(pickle, BinaryPrimitives.ReadUInt32LittleEndian(Take(pickle, 4))))); break;
                case 0x8d: Push(Encoding.UTF8.GetString(Take(pickle, (long)BinaryPrimitives.ReadUInt64LittleEndian(Take(pickle, 8))))); break;
                default:
                    pos--;
                    throw Corrupt($"unknown opcode 0x{op:x2}");
            }
        }
    }
}
